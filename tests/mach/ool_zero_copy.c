/*
 * Zero-copy out-of-line memory. A region of at least 64 KiB from vm_allocate
 * is a libportd shared buffer (a memfd); sent whole with deallocate=TRUE it
 * is not copied: its memfd is sealed and passed, so the receiver maps the very
 * file the sender wrote (the same inode in /proc/self/maps), and the sender's
 * range is gone, as on Mach. Everything else is copied into a fresh memfd (a
 * different inode) and still arrives intact: a region sent with
 * deallocate=FALSE, a region partly deallocated before the send, malloc'd
 * memory, anonymous memory vm_allocate did not make, a small region, a
 * region the program replaced with mmap. A send that fails gives a moved
 * region back with its bytes. Threads send at once; past the fd budget
 * vm_allocate falls back to anonymous memory. A region over 256 MiB is
 * sparse and goes zero copy too.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "mach_test.h"

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t region;
} ool_msg_t;

typedef struct {
  ool_msg_t msg;
  mach_msg_max_trailer_t trailer;
} ool_rcv_t;

/* The inode of the file mapped at `p` (0 for anonymous memory), from
   /proc/self/maps; -1 if nothing is mapped there. */
static long long inode_at(const void* p) {
  FILE* maps = fopen("/proc/self/maps", "r");
  CHECK(maps != NULL);
  char line[512];
  long long found = -1;
  while (fgets(line, sizeof line, maps) != NULL) {
    uintptr_t start = 0, end = 0;
    unsigned long long inode = 0;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %*s %llu", &start, &end, &inode) != 3) {
      continue;
    }
    if ((uintptr_t)p >= start && (uintptr_t)p < end) {
      found = (long long)inode;
      break;
    }
  }
  fclose(maps);
  return found;
}

static int mapped(const void* p) {
  return msync((void*)((uintptr_t)p & ~(uintptr_t)vm_page_mask), vm_page_size, MS_ASYNC) == 0;
}

static void fill(unsigned char* p, size_t size, unsigned seed) {
  for (size_t i = 0; i < size; ++i) p[i] = (unsigned char)(i * 31 + seed);
}

static void check_bytes(const unsigned char* p, size_t size, unsigned seed) {
  for (size_t i = 0; i < size; ++i) {
    if (p[i] != (unsigned char)(i * 31 + seed)) FAIL_AT("byte %zu is %u", i, p[i]);
  }
}

static mach_msg_return_t send_region(mach_port_t port, const void* address, size_t size,
                                     boolean_t deallocate, mach_msg_copy_options_t copy) {
  ool_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = port;
  out.base.header.msgh_id = 500;
  out.base.body.msgh_descriptor_count = 1;
  out.region.type = MACH_MSG_OOL_DESCRIPTOR;
  out.region.address = (void*)address;
  out.region.size = (mach_msg_size_t)size;
  out.region.deallocate = deallocate;
  out.region.copy = copy;
  return mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                  MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL);
}

/* Receives one region: checks its bytes and returns the inode it maps, then
   frees it. */
static long long receive_region(mach_port_t port, size_t size, unsigned seed) {
  ool_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 5000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.base.header.msgh_id, 500);
  CHECK_EQ(in.msg.region.type, MACH_MSG_OOL_DESCRIPTOR);
  CHECK_EQ(in.msg.region.size, size);
  const unsigned char* got = (const unsigned char*)in.msg.region.address;
  CHECK(got != NULL);
  check_bytes(got, size, seed);
  const long long inode = inode_at(got);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)got, size));
  return inode;
}

/* Each thread: its own port, regions allocated, sent zero copy, received,
   checked and freed, over and over, while the others do the same. */
static void* sender_thread(void* arg) {
  const unsigned seed = (unsigned)(uintptr_t)arg;
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));
  const size_t size = 128 << 10;
  for (int i = 0; i < 40; ++i) {
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
    fill((unsigned char*)region, size, seed + (unsigned)i);
    const long long inode = inode_at((void*)region);
    CHECK(inode > 0);
    CHECK_KR(send_region(port, (void*)region, size, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK_EQ(receive_region(port, size, seed + (unsigned)i), inode);
  }
  CHECK_OK(mach_port_mod_refs(mach_task_self(), port, MACH_PORT_RIGHT_RECEIVE, -1));
  return NULL;
}

int main(void) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));
  const size_t size = 1 << 20;

  /* 1. Whole region, deallocate=TRUE, virtual copy: zero copy. An odd size
     (not whole pages) still names the whole region. */
  for (int round = 0; round < 2; ++round) {
    const size_t sent = round == 0 ? size : size - 100;
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, sent, VM_FLAGS_ANYWHERE));
    fill((unsigned char*)region, sent, 1 + round);
    const long long sender_inode = inode_at((void*)region);
    CHECK(sender_inode > 0); /* a file (the memfd), not anonymous memory */
    CHECK_KR(send_region(port, (void*)region, sent, TRUE,
                         round == 0 ? MACH_MSG_VIRTUAL_COPY : MACH_MSG_PHYSICAL_COPY),
             MACH_MSG_SUCCESS);
    CHECK(!mapped((void*)region));
    CHECK_EQ(inode_at((void*)region), -1);
    CHECK_EQ(receive_region(port, sent, 1 + round), sender_inode);
  }

  /* 2. deallocate=FALSE: a copy; the sender keeps its region and may write it. */
  {
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
    fill((unsigned char*)region, size, 3);
    const long long sender_inode = inode_at((void*)region);
    CHECK_KR(send_region(port, (void*)region, size, FALSE, MACH_MSG_VIRTUAL_COPY),
             MACH_MSG_SUCCESS);
    CHECK(mapped((void*)region));
    memset((void*)region, 0xee, size); /* copied at send time: not seen */
    const long long got = receive_region(port, size, 3);
    CHECK(got > 0 && got != sender_inode);
    CHECK_OK(vm_deallocate(mach_task_self(), region, size));
  }

  /* 3. Part of a region deallocated first: the rest is sent by copy, and the
     parts still work. */
  {
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
    fill((unsigned char*)region, size, 4);
    const long long sender_inode = inode_at((void*)region);
    const size_t head = size / 4, hole = 16 * vm_page_size;
    CHECK_OK(vm_deallocate(mach_task_self(), region + head, hole));
    CHECK(!mapped((void*)(region + head)));
    CHECK(mapped((void*)(region + head + hole)));
    /* The head, deallocate=TRUE: copied, then unmapped. */
    CHECK_KR(send_region(port, (void*)region, head, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK(!mapped((void*)region));
    const long long got = receive_region(port, head, 4);
    CHECK(got > 0 && got != sender_inode);
    /* The tail is intact and still writable. */
    const unsigned char* tail = (const unsigned char*)(region + head + hole);
    for (size_t i = head + hole; i < size; ++i) {
      if (tail[i - head - hole] != (unsigned char)(i * 31 + 4)) FAIL_AT("tail byte %zu", i);
    }
    memset((void*)(region + head + hole), 1, size - head - hole);
    CHECK_OK(vm_deallocate(mach_task_self(), region + head + hole, size - head - hole));
    CHECK(!mapped((void*)(region + size - 1)));
  }

  /* 4. malloc'd memory (deallocate=FALSE) and anonymous memory that
     vm_allocate did not make (deallocate=TRUE): copied. */
  {
    unsigned char* heap = malloc(size);
    CHECK(heap != NULL);
    fill(heap, size, 5);
    CHECK_KR(send_region(port, heap, size, FALSE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    memset(heap, 0, size);
    CHECK(receive_region(port, size, 5) > 0);
    free(heap);

    unsigned char* anon =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED);
    fill(anon, size, 6);
    CHECK_KR(send_region(port, anon, size, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK(!mapped(anon));
    CHECK(receive_region(port, size, 6) > 0);
  }

  /* 5. A small region is anonymous memory, sent by copy. */
  {
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, 3 * vm_page_size, VM_FLAGS_ANYWHERE));
    CHECK_EQ(inode_at((void*)region), 0);
    fill((unsigned char*)region, 3 * vm_page_size, 7);
    CHECK_KR(send_region(port, (void*)region, 3 * vm_page_size, TRUE, MACH_MSG_VIRTUAL_COPY),
             MACH_MSG_SUCCESS);
    CHECK(!mapped((void*)region));
    CHECK(receive_region(port, 3 * vm_page_size, 7) > 0);
  }

  /* 6. A send that fails (a dead destination) leaves a moved region with the
     sender: the same bytes at the same address, writable; its next send is
     a copy. */
  {
    mach_port_t dead = MACH_PORT_NULL;
    CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &dead));
    CHECK_OK(mach_port_insert_right(mach_task_self(), dead, dead, MACH_MSG_TYPE_MAKE_SEND));
    CHECK_OK(mach_port_mod_refs(mach_task_self(), dead, MACH_PORT_RIGHT_RECEIVE, -1));
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
    fill((unsigned char*)region, size, 8);
    ool_msg_t out;
    memset(&out, 0, sizeof out);
    out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
    out.base.header.msgh_size = sizeof out;
    out.base.header.msgh_remote_port = dead;
    out.base.body.msgh_descriptor_count = 1;
    out.region.type = MACH_MSG_OOL_DESCRIPTOR;
    out.region.address = (void*)region;
    out.region.size = (mach_msg_size_t)size;
    out.region.deallocate = TRUE;
    out.region.copy = MACH_MSG_VIRTUAL_COPY;
    CHECK_KR(mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                      MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
             MACH_SEND_INVALID_DEST);
    CHECK(mapped((void*)region));
    check_bytes((const unsigned char*)region, size, 8);
    ((unsigned char*)region)[0] = 42;
    ((unsigned char*)region)[0] = (unsigned char)8;
    CHECK_KR(send_region(port, (void*)region, size, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK(!mapped((void*)region));
    CHECK(receive_region(port, size, 8) > 0);
  }
  /* 7. A region replaced behind vm_allocate's back (mmap MAP_FIXED over it)
     is the program's new memory: sent by copy, with the new bytes. */
  {
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, size, VM_FLAGS_ANYWHERE));
    const long long old_inode = inode_at((void*)region);
    void* again = mmap((void*)region, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(again == (void*)region);
    fill((unsigned char*)region, size, 9);
    CHECK_KR(send_region(port, (void*)region, size, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK(!mapped((void*)region));
    const long long got = receive_region(port, size, 9);
    CHECK(got > 0 && got != old_inode);
  }
  /* 8. mach_vm_allocate, a fixed address, and VM_FLAGS_OVERWRITE over a
     shared region: each is a fresh shared region, sent zero copy. */
  {
    mach_vm_address_t at = 0;
    CHECK_OK(mach_vm_allocate(mach_task_self(), &at, size, VM_FLAGS_ANYWHERE));
    const long long first = inode_at((void*)(uintptr_t)at);
    CHECK(first > 0);
    CHECK_OK(mach_vm_deallocate(mach_task_self(), at, size));
    CHECK_EQ(inode_at((void*)(uintptr_t)at), -1);
    CHECK_OK(mach_vm_allocate(mach_task_self(), &at, size, VM_FLAGS_FIXED));
    CHECK_KR(mach_vm_allocate(mach_task_self(), &at, size, VM_FLAGS_FIXED), KERN_NO_SPACE);
    const long long fixed = inode_at((void*)(uintptr_t)at);
    CHECK(fixed > 0 && fixed != first);
    fill((unsigned char*)(uintptr_t)at, size, 10);
    CHECK_OK(mach_vm_allocate(mach_task_self(), &at, size, VM_FLAGS_FIXED | VM_FLAGS_OVERWRITE));
    const long long over = inode_at((void*)(uintptr_t)at);
    CHECK(over > 0 && over != fixed);
    CHECK_EQ(((unsigned char*)(uintptr_t)at)[0], 0); /* zero-filled again */
    fill((unsigned char*)(uintptr_t)at, size, 11);
    CHECK_KR(send_region(port, (void*)(uintptr_t)at, size, TRUE, MACH_MSG_VIRTUAL_COPY),
             MACH_MSG_SUCCESS);
    CHECK_EQ(inode_at((void*)(uintptr_t)at), -1);
    CHECK_EQ(receive_region(port, size, 11), over);
  }
  /* 9. Threads at once. */
  {
    pthread_t threads[4];
    for (int t = 0; t < 4; ++t) {
      CHECK(pthread_create(&threads[t], NULL, sender_thread, (void*)(uintptr_t)(20 + 40 * t)) == 0);
    }
    for (int t = 0; t < 4; ++t) CHECK(pthread_join(threads[t], NULL) == 0);
  }

  /* 10. A region over 256 MiB is a sparse memfd (pages allocated as they
     are touched): 512 MiB with one byte written per MiB goes zero copy
     without ever allocating the rest. */
  {
    const size_t huge = (size_t)512 << 20, step = (size_t)1 << 20;
    vm_address_t region = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &region, huge, VM_FLAGS_ANYWHERE));
    const long long inode = inode_at((void*)region);
    CHECK(inode > 0);
    unsigned char* p = (unsigned char*)region;
    for (size_t at = 0; at < huge; at += step) p[at] = (unsigned char)(at / step + 1);
    CHECK_KR(send_region(port, p, huge, TRUE, MACH_MSG_VIRTUAL_COPY), MACH_MSG_SUCCESS);
    CHECK_EQ(inode_at(p), -1);
    ool_rcv_t in;
    memset(&in, 0, sizeof in);
    CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port,
                      5000, MACH_PORT_NULL),
             MACH_MSG_SUCCESS);
    CHECK_EQ(in.msg.region.size, huge);
    const unsigned char* got = in.msg.region.address;
    CHECK_EQ(inode_at(got), inode);
    for (size_t at = 0; at < huge; at += step) {
      if (got[at] != (unsigned char)(at / step + 1) || got[at + 1] != 0 || got[at + step - 1] != 0)
        FAIL_AT("the MiB at %zu", at);
    }
    CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)got, huge));
  }

  /* 11. Each shared region holds an fd: at most a quarter of RLIMIT_NOFILE
     (at least 16) are made; past that vm_allocate gives anonymous memory,
     which works as well and is sent by copy. Freeing one makes room. */
  {
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    limit.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
    enum { kRegions = 20 };
    vm_address_t regions[kRegions];
    const size_t small = 64 << 10;
    for (int r = 0; r < kRegions; ++r) {
      CHECK_OK(vm_allocate(mach_task_self(), &regions[r], small, VM_FLAGS_ANYWHERE));
      fill((unsigned char*)regions[r], small, (unsigned)r);
      if (r < 16) {
        CHECK(inode_at((void*)regions[r]) > 0);
      } else {
        CHECK_EQ(inode_at((void*)regions[r]), 0);
      }
    }
    for (int r = 15; r < 17; ++r) {
      CHECK_KR(send_region(port, (void*)regions[r], small, TRUE, MACH_MSG_VIRTUAL_COPY),
               MACH_MSG_SUCCESS);
      CHECK(receive_region(port, small, (unsigned)r) > 0);
    }
    vm_address_t again = 0;
    CHECK_OK(vm_allocate(mach_task_self(), &again, small, VM_FLAGS_ANYWHERE));
    CHECK(inode_at((void*)again) > 0);
    CHECK_OK(vm_deallocate(mach_task_self(), again, small));
    for (int r = 0; r < kRegions; ++r) {
      if (r == 15 || r == 16) continue;
      check_bytes((const unsigned char*)regions[r], small, (unsigned)r);
      CHECK_OK(vm_deallocate(mach_task_self(), regions[r], small));
    }
  }
  return test_pass("ool_zero_copy");
}
