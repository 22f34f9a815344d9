// Helpers for the integration tests: image paths, temp files, crafted images, and running unifnd
// with a time limit.
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace unifn::itest {

inline std::string example(const std::string& name) {
  return std::string(UNIFN_FUNCTIONS_DIR) + "/" + name + ".elf";
}
inline std::string guest(const std::string& name) {
  return std::string(UNIFN_BUILD_DIR) + "/test/guests/" + name + ".elf";
}
inline const std::string kUnifnd = std::string(UNIFN_BUILD_DIR) + "/unifnd";

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A file under /tmp that is removed when this goes out of scope.
struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& content) {
    path = "/tmp/unifn-itest-" + std::to_string(getpid()) + "-" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  }
  ~TempFile() { unlink(path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

struct Proc {
  int status = -1;  // exit code; 128 + signal when killed
  bool timed_out = false;
  std::string out, err;
};

// Runs argv[0] with argv (no shell), stdin from /dev/null or `input`, stdout and stderr
// captured apart; kills it after `limit`.
inline Proc run(const std::vector<std::string>& argv,
                std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  Proc p;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));  // Safe: posix_spawn does not write them.
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      p.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? p.out : p.err).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  p.status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  return p;
}

// `unifnd run IMAGE args...`
inline Proc unifnd_run(const std::string& image, std::vector<std::string> args = {},
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::vector<std::string> argv{kUnifnd, "run", image};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, limit);
}

// A minimal 32-bit x86 ELF executable with one PT_LOAD at 1 MiB and no multiboot header.
inline std::string elf32_without_multiboot() {
  Elf32_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS32;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_386;
  eh.e_version = EV_CURRENT;
  eh.e_entry = 0x100000 + sizeof(Elf32_Ehdr) + sizeof(Elf32_Phdr);
  eh.e_phoff = sizeof(Elf32_Ehdr);
  eh.e_ehsize = sizeof(Elf32_Ehdr);
  eh.e_phentsize = sizeof(Elf32_Phdr);
  eh.e_phnum = 1;
  Elf32_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = 0;
  ph.p_vaddr = ph.p_paddr = 0x100000;
  const std::string code = "\xfa\xf4\xeb\xfd";  // cli; hlt; jmp hlt
  ph.p_filesz = ph.p_memsz = sizeof eh + sizeof ph + static_cast<std::uint32_t>(code.size());
  ph.p_flags = PF_R | PF_X;
  ph.p_align = 0x1000;
  std::string bytes(reinterpret_cast<const char*>(&eh), sizeof eh);  // Safe: a POD header as bytes.
  bytes.append(reinterpret_cast<const char*>(&ph), sizeof ph);       // Safe: as above.
  bytes += code;
  return bytes;
}

// hello.elf with its last PT_LOAD moved (by p_paddr, where the loader puts it) to `gpa`.
inline std::string hello_with_last_segment_at(std::uint64_t gpa) {
  std::string b = read_file(example("hello"));
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  int last = -1;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, b.data() + eh.e_phoff + static_cast<std::size_t>(i) * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD) last = i;
  }
  if (last < 0) throw std::runtime_error("hello.elf has no PT_LOAD");
  Elf64_Phdr ph;
  char* at = b.data() + eh.e_phoff + static_cast<std::size_t>(last) * sizeof ph;
  std::memcpy(&ph, at, sizeof ph);
  ph.p_paddr = gpa;
  std::memcpy(at, &ph, sizeof ph);
  return b;
}

}  // namespace unifn::itest
