#include "portd/introspect.h"

#include <capnp/message.h>

#include <utility>

#include "libclient/src/codec.h"
#include "libclient/src/connection.h"
#include "portd/task.h"

namespace portd {

namespace {

// One round trip; the transport's failure or the daemon's status, with the
// reply when it carries `which`.
template <typename T>
Result<T> failure(Status transport, const detail::ReplyData& reply,
                  const detail::Connection& connection) {
  if (!ok(transport)) {
    if (transport == Status::kInvalidTask)
      return Result<T>(transport, "not connected to portd: " + connection.failure());
    return Result<T>(transport);
  }
  if (ok(reply.status))
    return Result<T>(Status::kFailure, "the daemon's reply does not carry the expected value");
  return Result<T>(reply.status);
}

Status call(detail::Connection& connection, capnp::MessageBuilder& request,
            detail::ReplyData* reply) {
  return connection.call(request, {}, reply);
}

bool is_array(const std::string& json) {
  return json.size() >= 2 && json.front() == '[' && json.back() == ']';
}

}  // namespace

Introspection::Introspection(std::shared_ptr<Task> task) : task_(std::move(task)) {}

Result<IntrospectPage> Introspection::page(const IntrospectQuery& query) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<wire::Request>();
  detail::encode_introspect(query, root.initIntrospect());
  detail::ReplyData reply;
  const Status transport = call(*task_->connection_, message, &reply);
  if (!ok(transport) || !ok(reply.status) || reply.which != wire::Reply::INTROSPECTION)
    return failure<IntrospectPage>(transport, reply, *task_->connection_);
  return std::move(reply.introspection);
}

Result<std::string> Introspection::fetch(IntrospectQuery query) {
  query.cursor.clear();
  std::string joined;
  for (;;) {
    auto p = page(query);
    if (!p) return Result<std::string>(p.status(), p.detail());
    if (!is_array(p->json)) {
      if (!joined.empty() || !p->next.empty())
        return Result<std::string>(Status::kFailure, "a listing page is not a JSON array");
      return std::move(p->json);  // an object: status, port
    }
    // "[a,b]" + "[c]" -> "[a,b,c]"
    const std::string_view items(p->json.data() + 1, p->json.size() - 2);
    if (joined.empty()) {
      joined = "[";
    } else if (!items.empty() && joined.size() > 1) {
      joined += ',';
    }
    joined += items;
    if (p->next.empty()) break;
    if (p->next == query.cursor)
      return Result<std::string>(Status::kFailure, "the daemon's cursor did not move");
    query.cursor = std::move(p->next);
  }
  joined += ']';
  return joined;
}

Status Introspection::monitor_start(const MonitorFilter& filter) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<wire::Request>();
  detail::encode_monitor_start(filter, root.initMonitorStart());
  detail::ReplyData reply;
  const Status transport = call(*task_->connection_, message, &reply);
  return ok(transport) ? reply.status : transport;
}

Result<std::vector<std::string>> Introspection::monitor_poll(
    std::optional<std::chrono::milliseconds> wait, uint32_t max) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<wire::Request>();
  auto poll = root.initMonitorPoll();
  poll.setTimeoutMs(detail::wire_timeout(wait));
  poll.setMax(max);
  detail::ReplyData reply;
  const Status transport = call(*task_->connection_, message, &reply);
  if (!ok(transport) || !ok(reply.status) || reply.which != wire::Reply::MONITOR_EVENTS)
    return failure<std::vector<std::string>>(transport, reply, *task_->connection_);
  return std::move(reply.monitor_events);
}

Status Introspection::monitor_stop() {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Request>().setMonitorStop();
  detail::ReplyData reply;
  const Status transport = call(*task_->connection_, message, &reply);
  return ok(transport) ? reply.status : transport;
}

}  // namespace portd
