/*
 * fork() and vm_allocate'd memory: the child gets its own copy, as with
 * Mach's default inheritance (VM_INHERIT_COPY). Shared-buffer regions (64 KiB
 * and up, which libportd backs with memfds so they can be sent zero copy), a
 * sparse region over 256 MiB, a small anonymous region and what is left of
 * a partly deallocated region all hold, in the child, the bytes they held at fork(); writes on either side
 * afterwards are not seen by the other. The child can send and free its
 * copies, and the parent's regions still go zero copy after the fork.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "mach_test.h"

#define NREGIONS 3

static vm_address_t regions[NREGIONS];
static vm_size_t sizes[NREGIONS];
static unsigned char* sparse; /* a region over 256 MiB: a sparse memfd */
#define SPARSE_SIZE ((size_t)300 << 20)
#define SPARSE_MID ((size_t)150 << 20)
static int parent_wrote[2]; /* parent -> child */
static int child_wrote[2];  /* child -> parent */

typedef struct {
  mach_msg_base_t base;
  mach_msg_ool_descriptor_t region;
} ool_msg_t;

typedef struct {
  ool_msg_t msg;
  mach_msg_max_trailer_t trailer;
} ool_rcv_t;

static void fill(int r, unsigned seed) {
  unsigned char* p = (unsigned char*)regions[r];
  for (vm_size_t i = 0; i < sizes[r]; ++i) p[i] = (unsigned char)(i * 7 + seed + r);
}

static void check(const unsigned char* p, int r, unsigned seed) {
  for (vm_size_t i = 0; i < sizes[r]; ++i) {
    if (p[i] != (unsigned char)(i * 7 + seed + r))
      FAIL_AT("region %d byte %lu is %u, seed %u", r, (unsigned long)i, p[i], seed);
  }
}

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

/* Sends region `r` to a port of our own with deallocate=TRUE, receives it and
   checks it; returns the inode the received region maps. */
static long long send_to_self(int r, unsigned seed) {
  mach_port_t port = MACH_PORT_NULL;
  CHECK_OK(mach_port_allocate(mach_task_self(), MACH_PORT_RIGHT_RECEIVE, &port));
  ool_msg_t out;
  memset(&out, 0, sizeof out);
  out.base.header.msgh_bits = MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX;
  out.base.header.msgh_size = sizeof out;
  out.base.header.msgh_remote_port = port;
  out.base.body.msgh_descriptor_count = 1;
  out.region.type = MACH_MSG_OOL_DESCRIPTOR;
  out.region.address = (void*)regions[r];
  out.region.size = (mach_msg_size_t)sizes[r];
  out.region.deallocate = TRUE;
  out.region.copy = MACH_MSG_VIRTUAL_COPY;
  CHECK_KR(mach_msg(&out.base.header, MACH_SEND_MSG, sizeof out, 0, MACH_PORT_NULL,
                    MACH_MSG_TIMEOUT_NONE, MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(inode_at((void*)regions[r]), -1);
  ool_rcv_t in;
  memset(&in, 0, sizeof in);
  CHECK_KR(mach_msg(&in.msg.base.header, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, sizeof in, port, 5000,
                    MACH_PORT_NULL),
           MACH_MSG_SUCCESS);
  CHECK_EQ(in.msg.region.size, sizes[r]);
  check(in.msg.region.address, r, seed);
  const long long inode = inode_at(in.msg.region.address);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)in.msg.region.address, sizes[r]));
  CHECK_OK(mach_port_mod_refs(mach_task_self(), port, MACH_PORT_RIGHT_RECEIVE, -1));
  return inode;
}

static int child(void* arg) {
  (void)arg;
  char c;
  close(parent_wrote[1]);
  close(child_wrote[0]);
  /* The parent writes its regions right after fork(); only then look. */
  CHECK_EQ(read(parent_wrote[0], &c, 1), 1);
  for (int r = 0; r < NREGIONS; ++r) {
    check((const unsigned char*)regions[r], r, 1); /* as at fork() */
    fill(r, 2);
  }
  CHECK_EQ(sparse[0], 1);
  CHECK_EQ(sparse[SPARSE_MID], 2);
  CHECK_EQ(sparse[SPARSE_MID + 1], 0);
  sparse[0] = 9;
  CHECK_EQ(write(child_wrote[1], "c", 1), 1);
  for (int r = 0; r < NREGIONS; ++r) check((const unsigned char*)regions[r], r, 2);
  CHECK_EQ(sparse[0], 9);
  CHECK_OK(vm_deallocate(mach_task_self(), (vm_address_t)sparse, SPARSE_SIZE));
  /* The child's copies are its own memory: sent (copied) and freed. */
  for (int r = 0; r < NREGIONS; ++r) CHECK(send_to_self(r, 2) > 0);
  return 0;
}

int main(void) {
  sizes[0] = 1 << 20;                    /* a shared buffer */
  sizes[1] = 2 * vm_page_size + 123;     /* anonymous */
  sizes[2] = (256 << 10) - vm_page_size; /* a shared buffer, partly deallocated below */
  for (int r = 0; r < NREGIONS; ++r) {
    CHECK_OK(vm_allocate(mach_task_self(), &regions[r], sizes[r] + (r == 2 ? vm_page_size : 0),
                         VM_FLAGS_ANYWHERE));
  }
  /* Region 2 loses its first page: what is left is a piece of a memfd. */
  CHECK_OK(vm_deallocate(mach_task_self(), regions[2], vm_page_size));
  regions[2] += vm_page_size;
  CHECK(inode_at((void*)regions[0]) > 0);
  CHECK(inode_at((void*)regions[2]) > 0);
  for (int r = 0; r < NREGIONS; ++r) fill(r, 1);
  vm_address_t big = 0;
  CHECK_OK(vm_allocate(mach_task_self(), &big, SPARSE_SIZE, VM_FLAGS_ANYWHERE));
  sparse = (unsigned char*)big;
  CHECK(inode_at(sparse) > 0);
  sparse[0] = 1;
  sparse[SPARSE_MID] = 2;
  CHECK(pipe(parent_wrote) == 0 && pipe(child_wrote) == 0);

  const pid_t pid = spawn_child(child, NULL);
  /* Only the child's ends: a child that fails is seen at once (end of file). */
  close(parent_wrote[0]);
  close(child_wrote[1]);
  for (int r = 0; r < NREGIONS; ++r) fill(r, 3);
  sparse[0] = 5;
  sparse[SPARSE_MID + 1] = 6;
  CHECK_EQ(write(parent_wrote[1], "p", 1), 1);
  char c;
  CHECK_EQ(read(child_wrote[0], &c, 1), 1);
  for (int r = 0; r < NREGIONS; ++r) check((const unsigned char*)regions[r], r, 3);
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(sparse[0], 5);
  CHECK_EQ(sparse[SPARSE_MID], 2);
  CHECK_EQ(sparse[SPARSE_MID + 1], 6);
  for (int r = 0; r < NREGIONS; ++r) check((const unsigned char*)regions[r], r, 3);

  /* The parent's whole shared region still goes zero copy. */
  const long long inode = inode_at((void*)regions[0]);
  CHECK_EQ(send_to_self(0, 3), inode);
  CHECK(send_to_self(1, 3) > 0);
  const long long piece_inode = inode_at((void*)regions[2]);
  CHECK(piece_inode > 0);
  CHECK(send_to_self(2, 3) != piece_inode); /* a piece: copied */
  return test_pass("fork_memory");
}
