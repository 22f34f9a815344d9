// Which connections the server holds, per client address, and which one goes when a new one comes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace unifn::http {

// A pure record of the connections and the shedding policy; the server keeps one under its lock.
// A connection is idle (no request begun: fresh, kept alive between requests, or closing after
// its last answer) or busy (a request's bytes arrived; until its answer is written). Only an idle
// connection is ever shed, the one idle longest first: the order is the order in which connections
// became idle, so no clock is involved.
//
// A new connection from a client at its own cap sheds that client's longest-idle connection, or is
// refused when all of them are busy: one client never costs another its connection. A new
// connection at the total cap (or with the descriptors' reserve reached) sheds the longest-idle
// connection of any client, or is refused when every connection is busy.
class ConnectionTable {
 public:
  using Id = std::uint64_t;
  struct Limits {
    std::size_t total = SIZE_MAX;       // limits.max_connections
    std::size_t per_client = SIZE_MAX;  // limits.max_connections_per_client
  };
  // Which limit made a connection go, or refused one.
  enum class Cause { None, Total, PerClient, Descriptors };
  struct Admission {
    bool admitted = false;
    std::optional<Id> shed;  // admitted in place of this one, which the server must now close
    Cause cause = Cause::None;
    std::string refusal;  // when not admitted: why, as a sentence for the client's 503
  };

  explicit ConnectionTable(Limits limits);

  // A new connection `id` from `client` (its address as text). low_on_descriptors: the new
  // connection's descriptor lies in the reserve kept for instances, so it is admitted only in
  // place of another. Admitted connections start idle.
  Admission admit(Id id, const std::string& client, bool low_on_descriptors = false);
  // Descriptors ran out (accept failed): the longest-idle connection, taken out; nullopt when
  // every connection is busy.
  std::optional<Id> shed_longest_idle();
  // A request began. False when id is not held any more (it was shed while idle): the connection
  // must close without serving.
  bool busy(Id id);
  void idle(Id id);    // its answer is written; it waits for another request or closes
  void remove(Id id);  // closed (also fine for an id already shed)

  std::size_t size() const { return entries_.size(); }
  std::size_t idle_count() const { return idle_.size(); }
  std::size_t of(std::string_view client) const;  // connections held for this client now
  bool holds(Id id) const { return entries_.contains(id); }
  bool is_idle(Id id) const;
  const Limits& limits() const { return limits_; }

  static std::string_view name(
      Cause cause);  // "max_connections", "max_connections_per_client", ...

 private:
  struct Entry {
    std::string client;
    std::optional<std::uint64_t> idle_since;  // its place in the idle order; nullopt when busy
  };
  struct Client {
    std::size_t count = 0;
    std::map<std::uint64_t, Id> idle;  // idle order -> id, longest idle first
  };
  void make_idle(Id id, Entry& e);
  void make_busy(Entry& e);

  Limits limits_;
  std::unordered_map<Id, Entry> entries_;
  std::map<std::uint64_t, Id> idle_;  // every client's idle connections, longest idle first
  std::unordered_map<std::string, Client> clients_;
  std::uint64_t next_idle_ = 0;
};

}  // namespace unifn::http
