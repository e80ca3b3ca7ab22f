"""Writes ember-dashboard.json: edit this and run it, rather than the JSON by hand."""

import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0


def stat(title, expr, x, unit="none"):
    return {
        "type": "stat", "title": title, "datasource": DS,
        "gridPos": {"h": 4, "w": 6, "x": x, "y": 0},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "targets": [{"refId": "A", "expr": expr, "datasource": DS}],
    }


def series(title, targets, x, y, unit="short", w=12, description=""):
    return {
        "type": "timeseries", "title": title, "datasource": DS, "description": description,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DS}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


panels += [
    stat("Nodes alive", 'sum(ember_nodes{state="alive"})', 0),
    stat("Tasks running", 'sum(ember_tasks{state="running"})', 6),
    stat("Actors alive", 'sum(ember_actors{state="alive"})', 12),
    stat("Jobs running", 'sum(ember_jobs{state="running"})', 18),
]
rows = [
    [
        series("Tasks by state", [("sum by (state) (ember_tasks)", "{{state}}")], 0, 4),
        series("Tasks finished and failed per second", [
            ("sum(rate(ember_tasks_finished_total[1m]))", "finished"),
            ("sum(rate(ember_tasks_failed_total[1m]))", "failed"),
        ], 12, 4, unit="ops"),
    ],
    [
        series("Scheduling latency (submission to start)", [
            (f"histogram_quantile({q}, sum by (le) (rate(ember_task_scheduling_latency_seconds_bucket[5m])))", f"p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ], 0, 12, unit="s"),
        series("Task run time", [
            (f"histogram_quantile({q}, sum by (le) (rate(ember_task_run_seconds_bucket[5m])))", f"p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ], 12, 12, unit="s"),
    ],
    [
        series("CPUs in use per node", [
            ('ember_node_resources{resource="CPU"} - ember_node_resources_available{resource="CPU"}', "{{node}}"),
        ], 0, 20),
        series("Pending demand by shape (the autoscaler's input)", [
            ("sum by (shape, kind) (ember_pending_demand)", "{{kind}} {{shape}}"),
        ], 12, 20),
    ],
    [
        series("Object store use", [
            ("sum by (instance) (ember_object_store_used_bytes)", "used {{instance}}"),
            ("sum by (instance) (ember_object_store_capacity_bytes)", "capacity {{instance}}"),
            ("sum by (instance) (ember_object_store_on_disk_bytes)", "spilled {{instance}}"),
        ], 0, 28, unit="bytes"),
        series("Spilling and restoring", [
            ("sum(rate(ember_object_store_spilled_bytes_total[1m]))", "spilled"),
            ("sum(rate(ember_object_store_restored_bytes_total[1m]))", "restored"),
        ], 12, 28, unit="Bps"),
    ],
    [
        series("Worker processes by state", [("sum by (state) (ember_worker_processes)", "{{state}}")], 0, 36),
        series("Actors by state", [("sum by (state) (ember_actors)", "{{state}}")], 12, 36),
    ],
    # The dashboard's own charts (its overview and nodes pages) that the rows above lack.
    [
        series("Nodes alive and pending demand", [
            ('sum(ember_nodes{state="alive"})', "nodes alive"),
            ("sum(ember_pending_demand)", "pending demand"),
        ], 0, 44),
        series("Object store, all nodes", [
            ("sum(ember_object_store_used_bytes)", "in memory"),
            ("sum(ember_object_store_on_disk_bytes)", "spilled to disk"),
        ], 12, 44, unit="bytes"),
    ],
    [
        series("Memory reserved per node (the memory resource tasks and actors hold)", [
            ('ember_node_resources{resource="memory"} - ember_node_resources_available{resource="memory"}', "{{node}}"),
        ], 0, 52, unit="bytes"),
        series("Tasks running", [('sum(ember_tasks{state="running"})', "running")], 12, 52),
    ],
    [
        series("gRPC handler latency, p95 by method", [
            ("histogram_quantile(0.95, sum by (le, method) (rate(ember_rpc_server_latency_seconds_bucket[5m])))", "{{method}}"),
        ], 0, 60, unit="s", w=24),
    ],
]
for row in rows:
    panels += row
for i, panel in enumerate(panels):
    panel["id"] = i + 1

dashboard = {
    "title": "ember cluster",
    "uid": "ember-cluster",
    "description": "An ember cluster at a glance, from the metrics its head and node agents serve.",
    "tags": ["ember"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [{
        "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
        "current": {},
    }]},
    "panels": panels,
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ember-dashboard.json"), "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
