/* With no daemon at PORTD_SOCKET: the task cannot be reached, every call says
 * KERN_INVALID_TASK, and the names the library reserves still read right. */
#include "mach_test.h"

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_EQ(mach_task_self(), mach_task_self_);
  CHECK_KR(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port), KERN_INVALID_TASK);
  CHECK_EQ(port, MACH_PORT_NULL);
  mach_port_t found = MACH_PORT_NULL;
  CHECK_KR(bootstrap_look_up(bootstrap_port, "anything", &found), KERN_INVALID_TASK);
  simple_rcv_t in;
  CHECK_KR(receive_simple(0x103, &in, 0), KERN_INVALID_TASK);
  /* Memory needs no daemon. */
  vm_address_t address = 0;
  CHECK_OK(vm_allocate(mach_task_self(), &address, 100, VM_FLAGS_ANYWHERE));
  CHECK(address != 0);
  CHECK_OK(vm_deallocate(mach_task_self(), address, 100));
  return test_pass("no_daemon");
}
