#include "portd/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "libclient/src/volatile_pool.h"

namespace portd {

namespace {

constexpr int kSealedSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

size_t page_size() {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_to_pages(size_t bytes) {
  const size_t page = page_size();
  return (bytes + page - 1) / page * page;
}

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// Fills a fresh memfd with `size` bytes from `data`: the pages are allocated
// in one go (posix_fallocate), then written with pwrite, which copies into
// them without faulting anything into our address space (docs/ool.md has the
// measurements behind this choice).
int fill(int fd, const void* data, size_t size) {
  if (size == 0) return 0;
  if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) return err;
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, p + done, size - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

// ---- SharedBuffer ----------------------------------------------------------------

Result<SharedBuffer> SharedBuffer::allocate(size_t size) {
  const size_t mapped = round_to_pages(size == 0 ? 1 : size);
  UniqueFd fd = detail::make_memfd("portd-buffer");
  if (!fd)
    return Result<SharedBuffer>(Status::kResourceShortage, errno_text("memfd_create", errno));
  if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(mapped)); err != 0)
    return Result<SharedBuffer>(Status::kResourceShortage, errno_text("posix_fallocate", err));
  void* address =
      ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
  if (address == MAP_FAILED)
    return Result<SharedBuffer>(Status::kResourceShortage, errno_text("mmap", errno));
  SharedBuffer buffer;
  buffer.parts_ = SharedBufferParts{fd.release(), address, size, mapped};
  return buffer;
}

SharedBuffer SharedBuffer::adopt(const SharedBufferParts& parts) noexcept {
  SharedBuffer buffer;
  buffer.parts_ = parts;
  return buffer;
}

SharedBuffer::~SharedBuffer() { reset(); }

SharedBuffer::SharedBuffer(SharedBuffer&& other) noexcept : parts_(other.release()) {}

SharedBuffer& SharedBuffer::operator=(SharedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    parts_ = other.release();
  }
  return *this;
}

SharedBufferParts SharedBuffer::release() noexcept {
  SharedBufferParts parts = parts_;
  parts_ = SharedBufferParts{};
  return parts;
}

void SharedBuffer::reset() noexcept {
  if (parts_.address != nullptr) ::munmap(parts_.address, parts_.mapped);
  if (parts_.fd >= 0) ::close(parts_.fd);
  parts_ = SharedBufferParts{};
}

// ---- VolatileBuffer ----------------------------------------------------------------

VolatileBuffer::VolatileBuffer(std::shared_ptr<detail::VolatileLease> lease) noexcept
    : lease_(std::move(lease)) {}
VolatileBuffer::~VolatileBuffer() = default;
VolatileBuffer::VolatileBuffer(VolatileBuffer&&) noexcept = default;
VolatileBuffer& VolatileBuffer::operator=(VolatileBuffer&&) noexcept = default;

std::byte* VolatileBuffer::data() const noexcept { return lease_ ? lease_->data() : nullptr; }
size_t VolatileBuffer::size() const noexcept { return lease_ ? lease_->size() : 0; }

// ---- OolRegion -------------------------------------------------------------------

OolRegion::~OolRegion() = default;
OolRegion::OolRegion(OolRegion&&) noexcept = default;
OolRegion& OolRegion::operator=(OolRegion&&) noexcept = default;

Result<OolRegion> OolRegion::copy(std::span<const std::byte> bytes) {
  return copy(bytes.data(), bytes.size());
}

Result<OolRegion> OolRegion::copy(const void* data, size_t size) {
  UniqueFd fd = detail::make_memfd("portd-ool");
  if (!fd) return Result<OolRegion>(Status::kResourceShortage, errno_text("memfd_create", errno));
  if (int err = fill(fd.get(), data, size); err != 0)
    return Result<OolRegion>(Status::kResourceShortage, errno_text("filling a memfd", err));
  if (::fcntl(fd.get(), F_ADD_SEALS, kSealedSeals) != 0)
    return Result<OolRegion>(Status::kResourceShortage, errno_text("sealing a memfd", errno));
  OolRegion region;
  region.fd_ = std::move(fd);
  region.size_ = size;
  return region;
}

Result<OolRegion> OolRegion::seal(SharedBuffer&& buffer, std::optional<size_t> size) {
  const size_t bytes = size.value_or(buffer.size());
  if (!buffer) return Result<OolRegion>(Status::kSendInvalidMemory, "an empty buffer");
  if (bytes > buffer.size())
    return Result<OolRegion>(Status::kSendInvalidMemory, "size is over the buffer's");
  SharedBufferParts& parts = buffer.parts_;
  // F_SEAL_WRITE fails while any writable shared mapping exists, ours
  // included: the buffer's mapping goes first.
  if (parts.address != nullptr) ::munmap(parts.address, parts.mapped);
  if (::fcntl(parts.fd, F_ADD_SEALS, kSealedSeals) != 0) {
    const int err = errno;
    // Give the buffer back as it was, at the same address if still free.
    void* again = MAP_FAILED;
    if (parts.address != nullptr) {
      again = ::mmap(parts.address, parts.mapped, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_FIXED_NOREPLACE, parts.fd, 0);
      if (again == MAP_FAILED)
        again = ::mmap(nullptr, parts.mapped, PROT_READ | PROT_WRITE, MAP_SHARED, parts.fd, 0);
    }
    parts.address = again == MAP_FAILED ? nullptr : again;
    if (parts.address == nullptr) buffer.reset();
    return Result<OolRegion>(Status::kSendInvalidMemory, errno_text("sealing the buffer", err));
  }
  OolRegion region;
  region.fd_ = UniqueFd(parts.fd);
  region.size_ = bytes;
  region.deallocate_ = true;
  parts = SharedBufferParts{};
  return region;
}

Result<OolRegion> OolRegion::lend(VolatileBuffer&& buffer, std::optional<size_t> size) {
  if (!buffer) return Result<OolRegion>(Status::kInvalidArgument, "empty volatile buffer");
  const size_t bytes = size.value_or(buffer.size());
  if (bytes > buffer.lease_->capacity())
    return Result<OolRegion>(Status::kInvalidArgument, "size is over the segment's");
  OolRegion region;
  region.lease_ = std::move(buffer.lease_);
  region.lease_->set_size(bytes);
  region.size_ = bytes;
  return region;
}

OolRegion OolRegion::adopt(UniqueFd fd, uint64_t size, bool is_volatile, bool deallocate) noexcept {
  OolRegion region;
  region.fd_ = std::move(fd);
  region.size_ = size;
  region.adopted_volatile_ = is_volatile;
  region.deallocate_ = deallocate;
  return region;
}

Result<OolRegion> OolRegion::share() const {
  if (is_volatile()) return Result<OolRegion>(Status::kInvalidArgument, "a volatile region");
  if (!fd_) return Result<OolRegion>(Status::kInvalidArgument, "an empty region");
  UniqueFd fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return Result<OolRegion>(Status::kResourceShortage, errno_text("dup", errno));
  OolRegion region;
  region.fd_ = std::move(fd);
  region.size_ = size_;
  region.deallocate_ = deallocate_;
  return region;
}

int OolRegion::fd() const noexcept { return lease_ ? lease_->ro_fd() : fd_.get(); }

// ---- MappedRegion ----------------------------------------------------------------

MappedRegion::~MappedRegion() { reset(); }

MappedRegion::MappedRegion(MappedRegion&& other) noexcept : parts_(other.release()) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    reset();
    parts_ = other.release();
  }
  return *this;
}

Result<MappedRegion> MappedRegion::map(int fd, uint64_t size, bool is_volatile,
                                       UniqueFd release_fd) {
  // The daemon checked these too; a mapping must never be able to lose its
  // pages (SIGBUS) or, unless volatile, change under the reader.
  const int required = is_volatile ? F_SEAL_SHRINK : kSealedSeals;
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & required) != required)
    return Result<MappedRegion>(Status::kInvalidArgument, "the region is not sealed");
  if (size > SIZE_MAX - page_size())
    return Result<MappedRegion>(Status::kInvalidArgument, "the region is too large");
  MappedRegion region;
  region.parts_.size = static_cast<size_t>(size);
  region.parts_.is_volatile = is_volatile;
  if (size != 0) {
    // Mapped lazily: read faults on a shared-memory file map its pages in
    // batches (fault-around), which measured faster here than MAP_POPULATE
    // followed by reads (docs/ool.md).
    const size_t mapped = round_to_pages(static_cast<size_t>(size));
    void* address = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED)
      return Result<MappedRegion>(Status::kResourceShortage, errno_text("mmap", errno));
    region.parts_.address = address;
    region.parts_.mapped = mapped;
  }
  region.parts_.release_fd = release_fd.release();
  return region;
}

MappedRegion MappedRegion::adopt(const MappedRegionParts& parts) noexcept {
  MappedRegion region;
  region.parts_ = parts;
  return region;
}

MappedRegionParts MappedRegion::release() noexcept {
  MappedRegionParts parts = parts_;
  parts_ = MappedRegionParts{};
  return parts;
}

void MappedRegion::reset() noexcept {
  // Unmap first: the release signal tells the sender it may write again.
  if (parts_.address != nullptr) ::munmap(parts_.address, parts_.mapped);
  if (parts_.release_fd >= 0) ::close(parts_.release_fd);
  parts_ = MappedRegionParts{};
}

}  // namespace portd
