#!/usr/bin/env python3
# Generates deploy/grafana/dashboards/daisi-cdc-consumer.json (run from the repository root and
# commit both). Every expression is run against a real Prometheus by test/integration/dashboard_test.cpp.
import json
R = '$__rate_interval'
panels = []
y = 0
pid = 0
def nid():
    global pid; pid += 1; return pid
def row(title):
    global y
    panels.append({"type": "row", "title": title, "id": nid(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
x = 0
def panel(title, targets, unit="short", kind="timeseries", w=8, h=8, desc="", extra=None):
    global x, y
    if x + w > 24:
        x = 0; y += h
    p = {"type": kind, "title": title, "id": nid(), "description": desc,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "options": {},
         "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l,
                      "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                     for i, (e, l) in enumerate(targets)]}
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if extra: p.update(extra)
    panels.append(p)
    x += w
def endrow():
    global x, y
    x = 0; y += 8
# Only the service's own series: process_* are standard names other jobs expose too.
OWN = 'and on (instance, job) cdc_consumer_up'

row("Throughput")
panel("Events by result", [(f'sum by (result) (rate(cdc_consumer_events_total[{R}]))', '{{result}}')], "ops",
      desc="Source messages completed per second, by final outcome (CONTRACT section 7).")
panel("Processed by table", [(f'sum by (table) (rate(cdc_consumer_events_total{{result="processed"}}[{R}]))', '{{table}}')], "ops",
      desc="Events published to wa_stream per second, by table.")
panel("Skipped by table", [(f'sum by (table) (rate(cdc_consumer_skipped_messages_total[{R}]))', '{{table}}')], "ops",
      desc="Messages of tables not in ingest.tables, by table name (first 64 names; later ones under _other). A new name here is a table the filter may be missing.")
endrow()
panel("Retries, publish errors, invalid", [
    (f'sum(rate(cdc_consumer_retries_total[{R}]))', 'NAKed for redelivery'),
    (f'sum(rate(cdc_consumer_publish_errors_total[{R}]))', 'publish errors'),
    (f'sum(rate(cdc_consumer_invalid_messages_total[{R}]))', 'invalid')], "ops")
panel("Publishes and PubAcks", [
    (f'sum(rate(cdc_consumer_publishes_total[{R}]))', 'publishes'),
    (f'sum by (result) (rate(cdc_consumer_pubacks_total[{R}]))', 'PubAck {{result}}')], "ops")
panel("Dedup look-ups", [(f'sum by (result) (rate(cdc_consumer_redis_hit_total[{R}]))', '{{result}}')], "ops",
      desc="Redis dedup look-ups: hit = a mark was found (duplicate or in flight).")
endrow()

row("Latency")
panel("End to end (delivery to source ack)", [
    (f'histogram_quantile({q}, sum by (le) (rate(cdc_consumer_processing_seconds_bucket[{R}])))', f'p{int(q*100)}')
    for q in (0.5, 0.95, 0.99)], "s",
    desc="cdc_consumer_processing_seconds: intake to the source ack or term, final outcomes.")
panel("Ingest to publish P95 against the 60 ms SLO", [
    (f'histogram_quantile(0.95, sum by (le) (rate(cdc_consumer_stage_latency_seconds_bucket{{stage="publish"}}[{R}])))', 'p95 intake -> publish final'),
    ('vector(0.06)', 'SLO 60 ms')], "s",
    desc="The design's SLO; the alert CdcLatencyOverSlo fires after 10 minutes over it.")
panel("Lag (longest delivery to completion, last 10 s)", [('max(cdc_consumer_lag_seconds)', 'lag')], "s")
endrow()
panel("P95 per stage (intake to leaving the stage)", [
    (f'histogram_quantile(0.95, sum by (le, stage) (rate(cdc_consumer_stage_latency_seconds_bucket[{R}])))', '{{stage}}')], "s",
    w=12, desc="The difference between two stages is the time spent in the later one, queueing included.")
panel("P99 per stage", [
    (f'histogram_quantile(0.99, sum by (le, stage) (rate(cdc_consumer_stage_latency_seconds_bucket[{R}])))', '{{stage}}')], "s", w=12)
endrow()
panel("PubAck latency", [
    (f'histogram_quantile({q}, sum by (le) (rate(cdc_consumer_publish_ack_seconds_bucket[{R}])))', f'p{int(q*100)}') for q in (0.5, 0.99)], "s", w=12)
panel("Redis round trip", [
    (f'histogram_quantile({q}, sum by (le) (rate(cdc_consumer_redis_round_trip_seconds_bucket[{R}])))', f'p{int(q*100)}') for q in (0.5, 0.99)], "s", w=12)
endrow()

row("Backlog and pipeline")
panel("Consumer backlog", [('max(cdc_consumer_backlog_messages)', 'not yet delivered (num_pending)'),
                           ('max(cdc_consumer_ack_pending_messages)', 'delivered, not acked (num_ack_pending)')], "short",
      desc="Consumer-wide: every replica reports the same value, hence max(). The autoscaler's input.")
panel("Since the last completion", [('time() - max(cdc_consumer_last_completion_timestamp_seconds)', 'seconds')], "s",
      desc="Grows while nothing completes; with a backlog that is a stall (see CdcConsumerStalled).")
panel("Ring occupancy", [('sum by (ring) (cdc_consumer_ring_occupancy{ring!="free"})', '{{ring}}'),
                         ('max(cdc_consumer_ring_capacity)', 'capacity')], "short",
      desc="Events queued before each stage; a full ring names the stage that cannot keep up.")
endrow()
panel("In flight", [('sum by (instance) (cdc_consumer_in_flight)', 'intake to completion {{instance}}'),
                    ('sum by (instance) (cdc_consumer_publish_in_flight)', 'awaiting PubAck {{instance}}')], "short")
panel("Health", [('sum(cdc_consumer_up)', 'up'), ('sum(cdc_consumer_ready)', 'ready'),
                 ('sum(cdc_consumer_stalled)', 'stalled')], "short", kind="stat",
      desc="Replicas running, ready (/readyz 200) and stalled (/healthz failing).")
panel("Panic guard", [('max(cdc_consumer_failing_seconds)', 'failing for'),
                      ('max(cdc_consumer_guard_max_failure_seconds)', 'exits at')], "s",
      desc="How long processing has been failing; the service exits with code 3 at guard.max_failure_duration.")
endrow()

row("Dependencies")
panel("NATS connected", [('min by (instance, connection) (cdc_consumer_nats_connected)', '{{instance}} {{connection}}')], "short",
      kind="state-timeline", extra={"options": {"showValue": "never"}})
panel("Redis up", [('min by (instance, connection) (cdc_consumer_redis_up)', '{{instance}} {{connection}}')], "short",
      kind="state-timeline", extra={"options": {"showValue": "never"}})
panel("Reconnects", [
    (f'sum by (connection) (increase(cdc_consumer_nats_reconnects_total[{R}]))', 'NATS {{connection}}'),
    (f'sum by (connection) (increase(cdc_consumer_nats_disconnects_total[{R}]))', 'NATS disconnects {{connection}}'),
    (f'sum by (connection) (increase(cdc_consumer_redis_reconnects_total[{R}]))', 'Redis {{connection}}'),
    (f'sum by (connection) (increase(cdc_consumer_redis_connect_failures_total[{R}]))', 'Redis failed connects {{connection}}')], "short")
endrow()
panel("Redis evictions", [('max(delta(cdc_consumer_redis_evicted_keys[5m]))', 'keys evicted in 5 min')], "short",
      desc="Redis INFO evicted_keys: dedup marks among them mean a redelivery can be published again.")
panel("Redis maxmemory-policy", [('max by (policy) (cdc_consumer_redis_maxmemory_policy)', '{{policy}}')], "short",
      kind="stat", extra={"options": {"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"]}}},
      desc="Anything but noeviction can evict dedup marks (they carry a TTL).")
panel("Redis errors", [(f'sum by (connection) (rate(cdc_consumer_redis_errors_total[{R}]))', '{{connection}}')], "ops")
endrow()

row("Failures")
panel("Dead letters by kind", [(f'sum by (error_kind) (increase(cdc_consumer_dead_letters_total[{R}]))', '{{error_kind}}')], "short",
      w=12, desc="Records written to the dead-letter stream, by error kind (cdc-replay dlq list --kind K).")
panel("Source completions", [(f'sum by (kind) (rate(cdc_consumer_source_completions_total[{R}]))', '{{kind}}'),
                             (f'sum(rate(cdc_consumer_source_completion_errors_total[{R}]))', 'not sent')], "ops", w=12)
endrow()

row("Process")
panel("CPU", [(f'rate(process_cpu_seconds_total[{R}]) {OWN}', '{{instance}}')], "percentunit")
panel("Memory", [(f'process_resident_memory_bytes {OWN}', 'resident {{instance}}'),
                 (f'process_virtual_memory_bytes {OWN}', 'virtual {{instance}}')], "bytes")
panel("File descriptors", [(f'process_open_fds {OWN}', 'open {{instance}}'),
                           (f'process_max_fds {OWN}', 'max {{instance}}')], "short")
endrow()
panel("Uptime", [(f'time() - (process_start_time_seconds {OWN})', '{{instance}}')], "s", kind="stat")
panel("Build", [('cdc_consumer_build_info', '{{version}} {{revision}}')], "short", kind="table", w=10,
      extra={"targets": [{"refId": "A", "expr": "cdc_consumer_build_info", "format": "table", "instant": True,
                          "datasource": {"type": "prometheus", "uid": "${datasource}"}}]})
panel("Log lines dropped and reloads", [(f'sum(increase(cdc_consumer_log_dropped_total[{R}]))', 'log lines dropped'),
                                        (f'sum by (result) (increase(cdc_consumer_config_reloads_total[{R}]))', 'reload {{result}}')], "short", w=6)
endrow()
panel("Partitions owned per replica", [], kind="text", w=24, h=3,
      extra={"options": {"mode": "markdown",
                         "content": "Partitions owned per replica: to be added with scale-out by partitions (issue 12); the service does not export ownership yet."}})
del panels[-1]["targets"]; del panels[-1]["datasource"]

dash = {
  "uid": "daisi-cdc-consumer", "title": "daisi CDC consumer", "tags": ["cdc", "nats", "redis"],
  "timezone": "utc", "schemaVersion": 37, "version": 1, "editable": True, "refresh": "30s",
  "time": {"from": "now-3h", "to": "now"},
  "description": "daisi-cdc-consumer: throughput, latency against the 60 ms SLO, backlog, pipeline, dependencies, dead letters. Alerts: deploy/prometheus/alerts.yml; runbooks: docs/operations.md.",
  "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                           "current": {}, "hide": 0, "refresh": 1}]},
  "annotations": {"list": []},
  "links": [],
  "panels": panels,
}
json.dump(dash, open('deploy/grafana/dashboards/daisi-cdc-consumer.json', 'w'), indent=2)
open('deploy/grafana/dashboards/daisi-cdc-consumer.json', 'a').write('\n')
print(len(panels), sum(len(p.get('targets', [])) for p in panels))
