#include "libclient/src/mach/vm.h"

#include <mach/mach_vm.h>
#include <mach/vm_map.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>

#include "libclient/src/mach/task_state.h"

namespace portd::mach {

namespace {

// Release signals of received volatile regions, by mapped address.
std::mutex releases_mu;
std::map<uintptr_t, int>& releases() {
  static auto* table = new std::map<uintptr_t, int>;
  return *table;
}

size_t page_size() {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

// Rounds `size` up to whole pages; false if that overflows.
bool round_to_pages(uint64_t size, size_t* out) {
  const uint64_t mask = page_size() - 1;
  if (size > SIZE_MAX - mask) return false;
  *out = static_cast<size_t>((size + mask) & ~mask);
  return true;
}

kern_return_t allocate(mach_port_t target, uint64_t* address, uint64_t size, int flags) {
  if (target != kTaskSelfName) return MACH_SEND_INVALID_DEST;
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  if (size == 0) {
    *address = 0;
    return KERN_SUCCESS;
  }
  size_t length = 0;
  if (!round_to_pages(size, &length)) return KERN_NO_SPACE;
  const bool anywhere = (flags & VM_FLAGS_ANYWHERE) != 0;
  int map_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  void* hint = nullptr;
  if (!anywhere) {
    if ((*address & (page_size() - 1)) != 0) return KERN_INVALID_ADDRESS;
    hint = reinterpret_cast<void*>(static_cast<uintptr_t>(*address));
    map_flags |= (flags & VM_FLAGS_OVERWRITE) != 0 ? MAP_FIXED : MAP_FIXED_NOREPLACE;
  }
  void* p = ::mmap(hint, length, PROT_READ | PROT_WRITE, map_flags, -1, 0);
  if (p == MAP_FAILED) {
    if (errno == EEXIST) return KERN_NO_SPACE;
    if (errno == ENOMEM) return KERN_NO_SPACE;
    return KERN_INVALID_ADDRESS;
  }
  if (!anywhere && p != hint) {  // an old kernel that ignores MAP_FIXED_NOREPLACE
    ::munmap(p, length);
    return KERN_NO_SPACE;
  }
  *address = reinterpret_cast<uintptr_t>(p);
  return KERN_SUCCESS;
}

kern_return_t deallocate(mach_port_t target, uint64_t address, uint64_t size) {
  if (target != kTaskSelfName) return MACH_SEND_INVALID_DEST;
  return deallocate_region(static_cast<uintptr_t>(address), static_cast<size_t>(size));
}

}  // namespace

void* allocate_region(size_t size) {
  uint64_t address = 0;
  if (allocate(kTaskSelfName, &address, size, VM_FLAGS_ANYWHERE) != KERN_SUCCESS) return nullptr;
  return reinterpret_cast<void*>(static_cast<uintptr_t>(address));
}

kern_return_t deallocate_region(uintptr_t address, size_t size) {
  if (size == 0) return KERN_SUCCESS;
  const uintptr_t mask = page_size() - 1;
  const uintptr_t start = address & ~mask;
  if (address + size < address || address + size > UINTPTR_MAX - mask) {
    return KERN_INVALID_ADDRESS;
  }
  const uintptr_t end = (address + size + mask) & ~mask;
  if (::munmap(reinterpret_cast<void*>(start), end - start) != 0) return KERN_INVALID_ADDRESS;
  std::lock_guard<std::mutex> guard(releases_mu);
  auto& table = releases();
  for (auto it = table.lower_bound(start); it != table.end() && it->first < end;) {
    ::close(it->second);
    it = table.erase(it);
  }
  return KERN_SUCCESS;
}

void track_release(uintptr_t address, int release_fd) {
  std::lock_guard<std::mutex> guard(releases_mu);
  auto [it, inserted] = releases().emplace(address, release_fd);
  if (!inserted) {  // an address reused without vm_deallocate: the old one is gone
    ::close(it->second);
    it->second = release_fd;
  }
}

}  // namespace portd::mach

#pragma GCC visibility push(default)
extern "C" {

kern_return_t vm_allocate(vm_map_t target_task, vm_address_t* address, vm_size_t size, int flags) {
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  uint64_t a = *address;
  const kern_return_t kr = portd::mach::allocate(target_task, &a, size, flags);
  if (kr == KERN_SUCCESS) *address = static_cast<vm_address_t>(a);
  return kr;
}

kern_return_t vm_deallocate(vm_map_t target_task, vm_address_t address, vm_size_t size) {
  return portd::mach::deallocate(target_task, address, size);
}

kern_return_t mach_vm_allocate(vm_map_t target, mach_vm_address_t* address, mach_vm_size_t size,
                               int flags) {
  if (address == nullptr) return KERN_INVALID_ARGUMENT;
  return portd::mach::allocate(target, address, size, flags);
}

kern_return_t mach_vm_deallocate(vm_map_t target, mach_vm_address_t address, mach_vm_size_t size) {
  return portd::mach::deallocate(target, address, size);
}

}  // extern "C"
#pragma GCC visibility pop
