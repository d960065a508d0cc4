"""The watcher from the workbench: start and stop ``python -m core watch``, and the
Monitor page's sections for estimated metrics and scheduled checks.

The watcher started here is one process per board, recorded (pid, its start time in
clock ticks, the log file) in ``<board>/.fixative/watcher.json`` for a local board, or
under ``$FIXATIVE_RUN_DIR`` for a remote one. A recorded pid is trusted only while the
process with that pid started at the recorded time (:func:`core.processes.state`), so a
pid reused by another program is never signalled.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import streamlit as st

from core import processes, settings
from core.errors import FixativeError
from core.monitoring.estimate import compare, estimated
from core.monitoring.monitor import open_ref
from core.store.paths import watcher_file
from core.store.protocols import StoreLike
from core.watch import config as watch_config
from core.watch import notify, watcher

# Running children, kept so they are reaped (no zombies) while the workbench runs.
_CHILDREN: dict[int, subprocess.Popen] = {}


def record_path(store: StoreLike) -> Path:
    if store.is_local:
        return Path(watcher_file(store))
    key = hashlib.sha256(str(store.url).encode()).hexdigest()[:16]
    return Path(settings.run_dir()) / "watch" / key / "watcher.json"


def watcher_state(store: StoreLike) -> dict[str, Any] | None:
    """The recorded watcher if it still runs (pid, started, log), else None."""
    path = record_path(store)
    try:
        rec = json.loads(path.read_text())
        pid, ticks = int(rec["pid"]), rec.get("start_ticks")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid in _CHILDREN and _CHILDREN[pid].poll() is not None:
        _CHILDREN.pop(pid, None)
    return rec if processes.state(pid, ticks) == "alive" else None


def start_watcher(store: StoreLike) -> dict[str, Any]:
    """Start ``python -m core watch`` for ``store`` unless one started here runs."""
    running = watcher_state(store)
    if running is not None:
        return running
    path = record_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_name("watcher.log")
    root = str(Path(__file__).resolve().parents[2])
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "core", "watch", "--store", store.url],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=root, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    rec = {"pid": proc.pid, "start_ticks": processes.start_ticks(proc.pid),
           "started": pd.Timestamp.now(tz="UTC").isoformat(), "log": str(log)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.replace(path)
    return rec


def stop_watcher(store: StoreLike, grace: float = 10.0) -> bool:
    """Stop the watcher started here (SIGTERM, then SIGKILL after ``grace`` s)."""
    rec = watcher_state(store)
    if rec is None:
        return False
    try:
        proc = psutil.Process(int(rec["pid"]))
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    except psutil.NoSuchProcess:
        pass
    child = _CHILDREN.pop(int(rec["pid"]), None)
    if child is not None:
        child.poll()
    record_path(store).unlink(missing_ok=True)
    return True


def log_tail(store: StoreLike, lines: int = 20) -> str:
    rec_path = record_path(store).with_name("watcher.log")
    try:
        with open(rec_path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- the Monitor page's sections -----------------------------------------------------------


def estimated_section(store: StoreLike, ref: str, window: str, *, since: Any = None,
                      until: Any = None, source: str = "log", all_versions: bool = False,
                      reference: tuple[Any, Any] | None = None) -> None:
    """Estimated metrics (without actuals) beside the realized ones, with their bands."""
    st.caption("Performance estimated from the logged probabilities (classifiers) or from "
               "the inputs (regressors), learnt on rows that already have actuals: the "
               "reference period if one is set above, else every row with actuals in the "
               "range. A realized value outside the band means the estimate missed.")
    if not st.button("Estimate performance", key="mon_est_go"):
        return
    try:
        with st.spinner("Estimating"), open_ref(store, ref, source=source, since=since,
                                                until=until, all_versions=all_versions,
                                                reference=reference) as mon:
            est = estimated(mon, window, reference=reference)
            realized = mon.metrics(window)
    except FixativeError as exc:
        st.error(exc.message)
        return
    if est.attrs.get("reason"):
        st.info(est.attrs["reason"][:1].upper() + est.attrs["reason"][1:] + ".")
        return
    st.write(f"Judged on: {est.attrs['reference']}; {est.attrs['calibration']}.")
    table = compare(realized, est)
    judged = table[table["inside"].notna()]
    if len(judged):
        share = judged["inside"].astype(bool).mean()
        st.write(f"Where actuals are in, the realized value is inside the band in "
                 f"{share:.0%} of {len(judged)} window-metric pairs.")
    metric = st.selectbox("Metric", sorted(table["metric"].unique()), key="mon_est_metric")
    st.plotly_chart(_band_figure(table[table["metric"] == metric], metric),
                    key="mon_est_chart")
    st.dataframe(est, hide_index=True, key="mon_est_table")


def _band_figure(rows: pd.DataFrame, metric: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    x = rows["window_start"]
    fig.add_trace(go.Scatter(x=x, y=rows["upper"], line={"width": 0}, showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=rows["lower"], fill="tonexty", line={"width": 0},
                             name="band", fillcolor="rgba(80,120,200,0.2)"))
    fig.add_trace(go.Scatter(x=x, y=rows["estimated"], mode="lines+markers", name="estimated"))
    fig.add_trace(go.Scatter(x=x, y=rows["realized"], mode="markers", name="realized",
                             marker={"symbol": "x", "size": 9}))
    fig.update_layout(title=f"{metric}: estimated, its band, and realized", height=340,
                      margin={"t": 40, "b": 20})
    return fig


def watch_section(store: StoreLike, name: str, version: str) -> None:
    """The watcher (start / stop), this model's schedule and channels, a test button and
    the latest scheduled evaluations."""
    running = watcher_state(store)
    c1, c2 = st.columns([3, 1])
    if running:
        c1.success(f"The watcher runs (pid {running['pid']}, since {running['started'][:16]} "
                   "UTC) and checks every aliased model on its schedule.")
        if c2.button("Stop the watcher", key="mon_watch_stop"):
            stop_watcher(store)
            st.rerun()
    else:
        c1.info("No watcher started from here. Start one to check the aliased models on "
                "their schedules and send notifications (or run `python -m core watch`).")
        if c2.button("Start the watcher", key="mon_watch_start"):
            start_watcher(store)
            time.sleep(0.2)
            st.rerun()
    cfg = watch_config.load(store, name)
    schedule = watch_config.schedule_for(store, name, cfg)
    with st.form("mon_watch_form"):
        text = st.text_input("Schedule (cron, UTC; empty follows the window)",
                             value=cfg.schedule or "", placeholder=schedule,
                             key="mon_watch_schedule")
        kind = st.selectbox("Add a channel", ["(none)", "webhook", "apprise"],
                            key="mon_watch_kind")
        cname = st.text_input("Channel name", key="mon_watch_cname", placeholder="ops")
        env = st.text_input("Environment variable holding its URL", key="mon_watch_env",
                            placeholder="OPS_WEBHOOK_URL")
        if st.form_submit_button("Save"):
            try:
                channels = list(cfg.channels)
                if kind != "(none)":
                    channels = [c for c in channels if c.name != cname.strip()]
                    channels.append(watch_config.Channel(cname.strip(), kind, env.strip()))
                watch_config.save(store, name, watch_config.WatchConfig(
                    schedule=text.strip() or None, enabled=cfg.enabled, retries=cfg.retries,
                    backoff=cfg.backoff, channels=channels))
                st.rerun()
            except FixativeError as exc:
                st.error(exc.message)
    if cfg.channels:
        st.write("Channels: " + ", ".join(f"{c.name} ({c.kind}, URL in `${c.env}`)"
                                          for c in cfg.channels))
        if st.button("Send a test notification", key="mon_watch_test"):
            data = notify.payload({"model": name, "version": version, "status": "test",
                                   "message": f"Test notification for {name}."},
                                  previous=None, window="", event="test")
            for c in cfg.channels:
                r = notify.deliver(store, c, data, retries=0, backoff=0)
                (st.success if r["delivered"] else st.error)(
                    f"{c.name}: " + ("delivered" if r["delivered"] else r["error"]))
    else:
        st.caption("No channel yet: status changes are recorded but not sent.")
    history = watcher.evaluations(store, name, limit=20)
    if history:
        st.dataframe(pd.DataFrame([{"checked": r.get("tick"), "by": r.get("who"),
                                    "statuses": ", ".join(f"{v['version']}: {v['status']}"
                                                          for v in r.get("versions", [])),
                                    "sent": sum(1 for n in r.get("notifications", [])
                                                if n.get("delivered"))} for r in history]),
                     hide_index=True, key="mon_watch_history")
    dead = notify.dead_letters(store, name)
    if dead:
        st.warning(f"{len(dead)} notification(s) could not be delivered; the last: "
                   f"{dead[-1]['channel']}: {dead[-1]['error']}")
