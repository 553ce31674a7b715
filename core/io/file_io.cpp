// Reading and writing whole files, and loading MNIST-layout IDX data sets from a directory; see
// file_io.h. Native only (POSIX + zlib), never in the wasm build. Never prints: every error is a Status
// that starts with the path it concerns.
#include "core/io/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/io/gzip.h"
#include "core/io/idx.h"

namespace ll {
namespace {

Status os_error(const std::string& path, const char* what, int err) {
  return Status::error(path + ": " + what + ": " + std::strerror(err));
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool exists(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0;
}

// Writes all of `bytes` to fd, retrying short writes and EINTR. Returns 0 or an errno value.
int write_all(int fd, const uint8_t* bytes, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

Status read_file(const std::string& path, std::vector<uint8_t>* out, uint64_t max_bytes) {
  out->clear();
  if (path.empty()) return Status::error("empty file name");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return os_error(path, "cannot open", errno);
  struct stat sb;
  if (::fstat(fd, &sb) != 0) {
    int err = errno;
    ::close(fd);
    return os_error(path, "cannot stat", err);
  }
  if (S_ISDIR(sb.st_mode)) {
    ::close(fd);
    return Status::error(path + ": is a directory, expected a file");
  }
  // Devices (/dev/zero never ends), pipes and sockets have no size to check: only regular files.
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd);
    return Status::error(path + ": is not a regular file (a device, pipe or socket); expected a file");
  }
  if (static_cast<uint64_t>(sb.st_size) > max_bytes) {
    ::close(fd);
    return Status::error(path + ": is " + std::to_string(sb.st_size) + " bytes, more than the limit of " +
                         std::to_string(max_bytes));
  }
  // Read exactly the size fstat reported, plus one byte to notice a file that grew meanwhile.
  const size_t want = static_cast<size_t>(sb.st_size);
  std::vector<uint8_t> buf(want + 1);
  size_t used = 0;
  while (used < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + used, buf.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return os_error(path, "read failed", err);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  if (used > want) return Status::error(path + ": the file grew while it was read");
  buf.resize(used);
  *out = std::move(buf);
  return Status();
}

namespace {
// The size an IDX file declares in its header (images: 16 + count * rows * cols; labels: 8 + count),
// or 0 when `head` does not start like an IDX file.
uint64_t idx_declared_size(const std::vector<uint8_t>& head) {
  auto be32 = [&](size_t i) {
    return uint64_t(head[i]) << 24 | uint64_t(head[i + 1]) << 16 | uint64_t(head[i + 2]) << 8 | head[i + 3];
  };
  if (head.size() >= 16 && be32(0) == 0x00000803) return 16 + be32(4) * be32(8) * be32(12);
  if (head.size() >= 8 && be32(0) == 0x00000801) return 8 + be32(4);
  return 0;
}
}  // namespace

Status read_file_maybe_gzip(const std::string& path, std::vector<uint8_t>* out) {
  std::vector<uint8_t> raw;
  Status st = read_file(path, &raw);
  if (!st.ok()) return st;
  if (!is_gzip(raw.data(), raw.size())) {
    if (ends_with(path, ".gz")) {
      return Status::error(path + ": has a .gz name but does not start with the gzip magic 1f 8b");
    }
    *out = std::move(raw);
    return Status();
  }
  // Bound the output by the IDX header inside (decompressing only its first 16 bytes to read it): a
  // stream that inflates beyond what its header declares stops there.
  std::vector<uint8_t> head;
  st = gunzip_prefix(raw.data(), raw.size(), 16, &head);
  if (!st.ok()) return st.with_context(path + ": ");
  const uint64_t declared = idx_declared_size(head);
  if (declared > kMaxFileBytes)
    return Status::error(path + ": its IDX header declares " + std::to_string(declared) +
                         " bytes, more than the limit of " + std::to_string(kMaxFileBytes));
  if (declared == 0)  // not IDX: bounded by the file-size limit
    return gunzip(raw.data(), raw.size(), out, static_cast<size_t>(kMaxFileBytes)).with_context(path + ": ");
  st = gunzip(raw.data(), raw.size(), out, static_cast<size_t>(declared));
  if (!st.ok() && st.message().find("exceeds the limit") != std::string::npos)
    return Status::error(path + ": decompresses to more than the " + std::to_string(declared) +
                         " bytes its IDX header declares");
  return st.with_context(path + ": ");
}

Status check_writable(const std::string& path) {
  if (path.empty()) return Status::error("the output file name is empty");
  struct stat sb;
  if (::stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode))
    return Status::error(path + ": is a directory; expected a file name to write");
  std::string probe = path + ".tmp.check." + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return os_error(path, "cannot write there", errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return Status();
}

Status write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  // Write a sibling temp file, then rename over the target: readers see the old file or the new one,
  // never a half-written one.
  static std::atomic<unsigned> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return os_error(tmp, "cannot create", errno);
  int err = write_all(fd, bytes.data(), bytes.size());
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return os_error(tmp, "write failed", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return os_error(path, "cannot rename temp file into place", err);
  }
  return Status();
}

Status load_idx_dataset(const std::string& dir, const std::string& prefix, Dataset* out) {
  // Finds `<dir>/<name>` or `<dir>/<name>.gz` and reads it (decompressed).
  auto load = [&](const std::string& name, std::string* path, std::vector<uint8_t>* bytes) {
    std::string base = dir + "/" + name;
    if (exists(base)) {
      *path = base;
    } else if (exists(base + ".gz")) {
      *path = base + ".gz";
    } else {
      return Status::error(base + ": not found (nor " + name + ".gz)");
    }
    return read_file_maybe_gzip(*path, bytes);
  };

  std::string images_path, labels_path;
  std::vector<uint8_t> bytes;
  ImageSet images;
  LabelSet labels;
  Status st = load(prefix + "-images-idx3-ubyte", &images_path, &bytes);
  if (!st.ok()) return st;
  st = parse_idx_images(bytes.data(), bytes.size(), &images);
  if (!st.ok()) return st.with_context(images_path + ": ");
  st = load(prefix + "-labels-idx1-ubyte", &labels_path, &bytes);
  if (!st.ok()) return st;
  st = parse_idx_labels(bytes.data(), bytes.size(), &labels);
  if (!st.ok()) return st.with_context(labels_path + ": ");
  // A count mismatch concerns both files; a bad label value only the labels file.
  std::string context = images.count == labels.count ? labels_path + ": "
                                                     : images_path + " and " + labels_path + ": ";
  return make_dataset(std::move(images), std::move(labels), out).with_context(context);
}

}  // namespace ll
