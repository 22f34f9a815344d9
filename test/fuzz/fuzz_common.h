// What the fuzzers share: how a finding is reported, and which known ones a run may tolerate.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <typeinfo>

#include <cxxabi.h>

namespace unifn::fuzz {

// A check failed: say which (a tag to grep for, and a sentence) and abort, so that libFuzzer keeps
// the input as crash-* and prints the stack. A tag listed in $UNIFN_FUZZ_TOLERATE (comma-separated,
// "all" for every tag) is counted and reported once instead, and finding() returns: for a known
// open issue that must not stop the fuzzer from looking for others.
inline bool tolerated(std::string_view tag) {
  static const std::string list = [] {
    const char* e = std::getenv("UNIFN_FUZZ_TOLERATE");
    return std::string(",") + (e ? e : "") + ",";
  }();
  return list.find(",all,") != std::string::npos ||
         list.find("," + std::string(tag) + ",") != std::string::npos;
}

inline void finding(std::string_view tag, const std::string& what) {
  if (tolerated(tag)) {
    static std::mutex mu;
    static std::map<std::string, unsigned long, std::less<>> seen;
    std::lock_guard lock(mu);
    if (seen[std::string(tag)]++ == 0)
      std::fprintf(stderr, "\nFUZZ FINDING (tolerated, reported once) [%.*s]: %s\n",
                   static_cast<int>(tag.size()), tag.data(), what.c_str());
    return;
  }
  std::fprintf(stderr, "\nFUZZ FINDING [%.*s]: %s\n", static_cast<int>(tag.size()), tag.data(),
               what.c_str());
  std::fflush(stderr);
  std::abort();
}

// "std::out_of_range: vector::_M_range_check" for the exception in flight.
inline std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    int st = 0;
    char* name = abi::__cxa_demangle(typeid(x).name(), nullptr, nullptr, &st);
    std::string out = std::string(st == 0 && name ? name : typeid(x).name()) + ": " + x.what();
    std::free(name);
    return out;
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// The 32-bit little-endian reader the harnesses take their inputs apart with: past the end, every
// read gives zeros and ok() turns false.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  template <typename T>
  T take() {
    T v{};
    if (n_ - pos_ < sizeof(T)) {
      pos_ = n_;
      ok_ = false;
      return v;
    }
    __builtin_memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view bytes(std::size_t n) {
    if (n > n_ - pos_) {
      n = n_ - pos_;
      ok_ = false;
    }
    std::string_view v(reinterpret_cast<const char*>(p_ + pos_), n);  // Safe: input bytes as chars.
    pos_ += n;
    return v;
  }
  std::string_view rest() { return bytes(n_ - pos_); }
  bool more() const { return pos_ < n_; }
  bool ok() const { return ok_; }
  std::size_t pos() const { return pos_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_, pos_ = 0;
  bool ok_ = true;
};

}  // namespace unifn::fuzz
