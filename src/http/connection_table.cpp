// The connection table: per-client counts, the idle order, and which connection a new one
// displaces.
#include "src/http/connection_table.h"

#include <algorithm>

#include <fmt/format.h>

namespace unifn::http {

ConnectionTable::ConnectionTable(Limits limits) : limits_(limits) {
  limits_.total = std::max<std::size_t>(limits_.total, 1);
  limits_.per_client = std::max<std::size_t>(limits_.per_client, 1);
}

std::string_view ConnectionTable::name(Cause cause) {
  switch (cause) {
    case Cause::None:
      return "none";
    case Cause::Total:
      return "max_connections";
    case Cause::PerClient:
      return "max_connections_per_client";
    case Cause::Descriptors:
      return "reserved_descriptors";
  }
  return "none";
}

void ConnectionTable::make_idle(Id id, Entry& e) {
  if (e.idle_since) return;
  e.idle_since = next_idle_++;
  idle_.emplace(*e.idle_since, id);
  clients_[e.client].idle.emplace(*e.idle_since, id);
}

void ConnectionTable::make_busy(Entry& e) {
  if (!e.idle_since) return;
  idle_.erase(*e.idle_since);
  clients_[e.client].idle.erase(*e.idle_since);
  e.idle_since.reset();
}

ConnectionTable::Admission ConnectionTable::admit(Id id, const std::string& client,
                                                  bool low_on_descriptors) {
  Admission a;
  if (entries_.contains(id)) {
    a.refusal = fmt::format("connection {} is already held", id);
    return a;
  }
  const auto held = clients_.find(client);
  const std::size_t mine = held == clients_.end() ? 0 : held->second.count;
  if (mine >= limits_.per_client) {
    a.cause = Cause::PerClient;
    if (held->second.idle.empty()) {
      a.refusal = fmt::format(
          "this client ({}) already holds {} connections, each with a request under way, and may "
          "hold no more "
          "(limits.max_connections_per_client); retry once one is answered",
          client, mine);
      return a;
    }
    a.shed = held->second.idle.begin()->second;
  } else if (entries_.size() >= limits_.total || low_on_descriptors) {
    a.cause = low_on_descriptors ? Cause::Descriptors : Cause::Total;
    if (idle_.empty()) {
      a.refusal =
          low_on_descriptors
              ? fmt::format(
                    "unifnd's open descriptors reached the reserve kept for instances and "
                    "snapshots "
                    "(limits.reserved_descriptors), and each of its {} connections has a request "
                    "under way; retry shortly",
                    entries_.size())
              : fmt::format(
                    "unifnd holds {} connections, each with a request under way, and may hold no "
                    "more "
                    "(limits.max_connections); retry shortly",
                    entries_.size());
      return a;
    }
    a.shed = idle_.begin()->second;
  }
  if (a.shed) remove(*a.shed);
  auto& e = entries_[id];
  e.client = client;
  ++clients_[client].count;
  make_idle(id, e);
  a.admitted = true;
  return a;
}

std::optional<ConnectionTable::Id> ConnectionTable::shed_longest_idle() {
  if (idle_.empty()) return std::nullopt;
  const Id id = idle_.begin()->second;
  remove(id);
  return id;
}

bool ConnectionTable::busy(Id id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  make_busy(it->second);
  return true;
}

void ConnectionTable::idle(Id id) {
  auto it = entries_.find(id);
  if (it != entries_.end()) make_idle(id, it->second);
}

void ConnectionTable::remove(Id id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  make_busy(it->second);  // out of the idle order
  auto c = clients_.find(it->second.client);
  if (c != clients_.end() && --c->second.count == 0) clients_.erase(c);
  entries_.erase(it);
}

std::size_t ConnectionTable::of(std::string_view client) const {
  auto it = clients_.find(std::string(client));
  return it == clients_.end() ? 0 : it->second.count;
}

bool ConnectionTable::is_idle(Id id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.idle_since.has_value();
}

}  // namespace unifn::http
