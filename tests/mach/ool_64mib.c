/*
 * 64 MiB out of line, between two processes. A child (a fresh task) fills a
 * 64 MiB vm_allocate'd region with a pattern and sends it to its parent with
 * deallocate=TRUE: zero copy (the parent maps the very memfd the child wrote,
 * whose inode the child puts in the message), and the child's range is gone.
 * Then 64 MiB of malloc'd memory, which is copied. The parent checks every
 * byte of both.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "mach_test.h"

#define SIZE ((size_t)64 << 20)

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t region;
  long long inode; /* of the file the sender's region mapped */
  unsigned seed;
} big_msg_t;

typedef struct {
  big_msg_t msg;
  mach_msg_max_trailer_t trailer;
} big_rcv_t;

static name_t service;

static uint64_t word(size_t i, unsigned seed) {
  return ((uint64_t)i * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)seed << 56) ^ (uint64_t)i;
}

static void fill(void* p, unsigned seed) {
  uint64_t* w = p;
  for (size_t i = 0; i < SIZE / 8; ++i) w[i] = word(i, seed);
}

/* The inode of the file mapped at `p`, 0 if anonymous, -1 if unmapped. */
static long long inode_at(const void* p) {
  FILE* maps = fopen("/proc/self/maps", "r");
  CHECK(maps != NULL);
  char line[512];
  long long found = -1;
  while (fgets(line, sizeof line, maps) != NULL) {
    unsigned long long start = 0, end = 0, inode = 0;
    if (sscanf(line, "%llx-%llx %*s %*s %*s %llu", &start, &end, &inode) != 3) continue;
    if ((uintptr_t)p >= start && (uintptr_t)p < end) {
      found = (long long)inode;
      break;
    }
  }
  fclose(maps);
  return found;
}

static mach_msg_return_t send_big(mach_port_t dest, void* address, boolean_t deallocate,
                                  long long inode, unsigned seed) {
  big_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = dest;
  out.base.header.msgh_id = 64;
  out.base.body.msgh_descriptor_count = 1;
  out.region.type = MACH_MSG_OOL_DESCRIPTOR;
  out.region.address = address;
  out.region.size = (mach_msg_size_t)SIZE;
  out.region.deallocate = deallocate;
  out.region.copy = MACH_MSG_VIRTUAL_COPY;
  out.inode = inode;
  out.seed = seed;
  return mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                  MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL);
}

static int child(void* arg) {
  (void)arg;
  mach_port_t server = MACH_PORT_NULL;
  CHECK_OK(bootstrap_look_up(bootstrap_port, service, &server));

  vm_address_t region = 0;
  CHECK_OK(vm_allocate(mach_task_self(), &region, SIZE, VM_FLAGS_ANYWHERE));
  fill((void*)region, 1);
  const long long inode = inode_at((void*)region);
  CHECK(inode > 0);
  CHECK_KR(send_big(server, (void*)region, TRUE, inode, 1), MACH_MSG_SUCCESS);
  CHECK_EQ(inode_at((void*)region), -1); /* deallocate=TRUE: gone */

  void* heap = malloc(SIZE);
  CHECK(heap != NULL);
  fill(heap, 2);
  CHECK_KR(send_big(server, heap, FALSE, 0, 2), MACH_MSG_SUCCESS);
  free(heap);
  return 0;
}

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  unique_name(service, "ool64");
  CHECK_OK(bootstrap_check_in(bootstrap_port, service, &port));
  const double start = now_ms();
  const pid_t pid = spawn_child(child, NULL);

  for (unsigned n = 1; n <= 2; ++n) {
    big_rcv_t in;
    memset(&in, 0, sizeof in);
    CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port,
                      30000, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(in.msg.base.header.msgh_id, 64);
    CHECK_EQ(in.msg.region.type, MACH_MSG_OOL_DESCRIPTOR);
    CHECK_EQ(in.msg.region.size, SIZE);
    CHECK_EQ(in.msg.seed, n);
    const uint64_t* w = in.msg.region.address;
    CHECK(w != NULL);
    for (size_t i = 0; i < SIZE / 8; ++i) {
      if (w[i] != word(i, n))
        FAIL_AT("message %u: word %zu is %llx", n, i, (unsigned long long)w[i]);
    }
    const long long inode = inode_at(w);
    if (n == 1) {
      CHECK_EQ(inode, in.msg.inode); /* the sender's own memfd: nothing copied */
    } else {
      CHECK(inode > 0);
    }
    CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)w, SIZE));
  }
  CHECK_EQ(wait_child(pid), 0);
  printf("two 64 MiB messages sent, received and checked in %.0f ms\n", now_ms() - start);
  return test_pass("ool_64mib");
}
