"""Deploy: serve a model version as a local REST endpoint, watch it, stop it, ship it."""

from __future__ import annotations

import streamlit as st

from core.deploy import docker as dockerbundle
from core.deploy import endpoints as deploy
from core.deploy import fleet, probes, views
from core.errors import FixativeError
from core.safety.loader import forbidden_message
from core.serving.netcheck import MAX_WORKERS, free_port
from core.store.upload import trust_label
from core.workbench import catalog, challenger, ui

ENGINES = {"auto": "auto: the compiled graph when verified, else scikit-learn",
           "sklearn": "scikit-learn (loads the model file)",
           "onnx": "the compiled graph (never loads the model file)"}

HOSTS = {"127.0.0.1": "this machine only (127.0.0.1)",
         "0.0.0.0": "every network interface (0.0.0.0)"}
LANGUAGES = {"curl": "bash", "R (httr2)": "r"}
_NEXT_PORT = "_deploy_next_port"
_PREPARED = "_deploy_docker_prepared"


def start_section(store, name: str, version: str) -> None:
    st.subheader("Start an endpoint")
    st.caption("The endpoint is a server process on this machine. It keeps running when you "
               "close the workbench, until you stop it below or with "
               "`python -m core endpoints stop`.")
    aliases = ui.cached_aliases(name)
    targets = [f"{name}@{version}"] + [f"{name}:{a}" for a in sorted(aliases)]

    def label(ref: str) -> str:
        if ":" in ref:
            alias = ref.split(":", 1)[1]
            return f"alias {alias} (now {aliases[alias]})"
        return f"version {version} (selected in the sidebar)"

    # The port defaults to a free one; after a start it moves on to the next free one.
    if _NEXT_PORT in st.session_state:
        st.session_state["deploy_port"] = st.session_state.pop(_NEXT_PORT)
    elif "deploy_port" not in st.session_state:
        st.session_state["deploy_port"] = free_port("127.0.0.1", preferred=8080)

    # Trust given at upload is not kept with the version: a model that needs it needs it
    # again here, for exactly its names (and never for names that run programs or code).
    reports = {t: ui.cached_safety(name, aliases[t.split(":", 1)[1]] if ":" in t else version)
               for t in targets}
    needs = sorted({n for r in reports.values() for n in r.untrusted})
    forbidden = sorted({n for r in reports.values() for n in r.forbidden})
    if forbidden:
        st.error(forbidden_message(forbidden, f"A model among {', '.join(targets)}"))
    elif needs:
        st.warning("This model imports names outside the safety allowlist: "
                   + ", ".join(f"`{n}`" for n in needs) + ". The server loads it only if you "
                   "trust them.")
    with st.form("deploy_start_form"):
        target = st.selectbox("Serve", targets, key="deploy_target", format_func=label)
        col_port, col_host, col_workers = st.columns(3)
        port = col_port.number_input("Port", min_value=1, max_value=65535, step=1,
                                     key="deploy_port")
        host = col_host.selectbox("Listen on", list(HOSTS), key="deploy_host",
                                  format_func=HOSTS.__getitem__)
        workers = col_workers.number_input("Workers", min_value=1, max_value=MAX_WORKERS,
                                           value=1, step=1, key="deploy_workers",
                                           help="Server processes; one per CPU core is a good "
                                                "start. Each loads the model.")
        log = st.checkbox("Log predictions (needed for monitoring)", value=True,
                          key="deploy_log")
        engine = st.selectbox("Engine", ENGINES, key="deploy_engine",
                              format_func=ENGINES.__getitem__)
        st.caption(catalog.compiled_text(ui.get_store().compiled(name, version)))
        trust = bool(needs) and not forbidden and st.checkbox(
            trust_label(needs), key=f"deploy_trust_{name}_{version}")
        shadow, canary, missing = challenger.challenger_inputs(store, name, version,
                                                               "deploy_ch_start")
        submitted = st.form_submit_button("Start endpoint", type="primary")
    if not submitted:
        return
    if missing:
        st.error(missing)
        return
    trusted = list(reports[target].untrusted) if trust else []
    with st.spinner(f"Starting {target} on port {int(port)}…"):
        try:
            started = deploy.start_endpoint(store, target, port=int(port), host=host,
                                            workers=int(workers), log=log, trusted=trusted,
                                            engine=engine, shadow=shadow, canary=canary)
        except FixativeError as exc:
            challenger.show_error(exc, shadow or canary)
            return
    st.session_state[_NEXT_PORT] = free_port("127.0.0.1", preferred=started.port + 1)
    ui.flash(f"Started {started.label}: {started.url}/")
    st.rerun()


def endpoint_details(store, status: deploy.EndpointStatus, expanded: bool) -> None:
    ep = status.endpoint
    with st.expander(f"{ep.label}: {status.status}", expanded=expanded):
        if status.detail:
            (st.warning if status.alive else st.error)(status.detail)
        actions = st.columns(3)
        if status.alive:
            actions[0].link_button("Open the docs page", ep.url + "/")
        if actions[1].button("Stop" if status.alive else "Forget", key=f"deploy_stop_{ep.id}"):
            try:
                result = deploy.stop_endpoint(store, ep)
            except FixativeError as exc:
                st.error(exc.message)
            else:
                ui.flash(f"{ep.label}: {result.detail}.")
                st.rerun()
        if not status.alive:
            return
        doc, why = probes.metadata(ep)
        st.caption(f"Engine: {views.engine_text(doc, why)}")
        challenger.endpoint_challenger(store, ep, doc, why)
        st.markdown("**Recent requests**")
        recent = views.recent_requests(store, ep, 20)
        if recent.empty:
            st.caption("No requests logged yet. Send one with an example below; the log is "
                       "written about once a second." if ep.options.get("log", True) else
                       "This endpoint does not log predictions.")
        else:
            st.dataframe(recent, hide_index=True, key=f"deploy_recent_{ep.id}",
                         column_config={
                             "ts": st.column_config.DatetimeColumn(
                                 "received", format="YYYY-MM-DD HH:mm:ss.SSS"),
                             "prediction": st.column_config.TextColumn("predicted"),
                             "latency_ms": st.column_config.NumberColumn(
                                 "latency (ms)", format="%.1f")})
        st.markdown("**Call it**")
        try:
            examples = views.client_examples(ui.cached_meta(ep.name, ep.version), ep.url)
        except FixativeError as exc:
            st.caption(f"No examples: {exc.message}")
            return
        for tab, (title, code) in zip(st.tabs(list(examples)), examples.items(), strict=True):
            tab.code(code, language=LANGUAGES.get(title, "python"))


def endpoints_section(store) -> None:
    st.subheader("Endpoints")
    statuses = deploy.list_endpoints(store)
    if not statuses:
        st.info("No endpoints are running. Start one above; then its address, health, request "
                "counts and recent requests show here.")
        return
    if st.button("Refresh", key="deploy_refresh"):
        st.rerun()
    st.dataframe(
        views.endpoints_frame(statuses), hide_index=True, key="deploy_table",
        column_config={"url": st.column_config.LinkColumn("url"),
                       "started": st.column_config.DatetimeColumn(
                           "started", format="YYYY-MM-DD HH:mm:ss")})
    for status in statuses:
        endpoint_details(store, status, expanded=len(statuses) == 1)


def fleet_section(store) -> None:
    st.subheader("Replicas on the board")
    st.caption("Every server process that serves from this board reports here every few "
               "seconds, wherever it runs: on this machine, in a container, in a Kubernetes "
               "pod. A replica that stops reporting turns stale; one stopped cleanly "
               "disappears.")
    try:
        replicas, notes = fleet.fleet(store)
    except FixativeError as exc:
        st.error(exc.message)
        return
    for note in notes:
        st.warning(note)
    if not replicas:
        st.info("No replica reports to this board. Start an endpoint above, or run the Docker "
                "bundle with FIXATIVE_STORE set to this board; its replicas then show here "
                "with their health and traffic.")
        return
    for line in fleet.rollouts(replicas):
        st.markdown(f"- {line}")
    st.dataframe(fleet.fleet_frame(replicas), hide_index=True, key="deploy_fleet",
                 column_config={
                     "started": st.column_config.DatetimeColumn(
                         "started", format="YYYY-MM-DD HH:mm:ss"),
                     "last_seen": st.column_config.DatetimeColumn(
                         "last seen", format="YYYY-MM-DD HH:mm:ss"),
                     "age_seconds": st.column_config.NumberColumn("seconds ago",
                                                                  format="%.0f")})
    if any(f.where == "remote" for f in replicas):
        st.caption(fleet.REMOTE_STOP)
    stale = [f for f in replicas if f.replica.health == "stale"]
    if stale and st.button(f"Remove the {len(stale)} stale replica"
                           f"{'s' if len(stale) > 1 else ''} from the list",
                           key="deploy_fleet_prune"):
        gone = fleet.prune_stale(store, 0)
        ui.flash(f"Removed {len(gone)} stale heartbeat{'s' if len(gone) != 1 else ''}.")
        st.rerun()


def history_section(store, name: str) -> None:
    history = deploy.endpoint_history(store, name)
    if history:
        with st.expander(f"Endpoint history of {name} ({len(history)} events)"):
            st.dataframe(views.history_frame(history), hide_index=True, key="deploy_history")


def docker_section(store, name: str, version: str) -> None:
    st.subheader("Docker bundle")
    st.write(f"A folder that serves {name}@{version} anywhere containers run: a Dockerfile "
             "(slim Python image, non-root, health check), requirements pinned to the versions "
             "recorded with the model, the model files and the server.")
    col_workers, col_port = st.columns(2)
    workers = col_workers.number_input("Workers in the container", min_value=1,
                                       max_value=MAX_WORKERS, value=1, step=1,
                                       key="deploy_docker_workers")
    port = col_port.number_input("Container port", min_value=1, max_value=65535,
                                 value=dockerbundle.DEFAULT_PORT, step=1,
                                 key="deploy_docker_port")
    col_k8s, col_lock = st.columns(2)
    k8s = col_k8s.checkbox("Add Kubernetes manifests", key="deploy_docker_k8s",
                           help="A k8s/ folder for `kubectl apply -k`: Deployment, Service, "
                                "autoscaler, disruption budget; API tokens and S3 keys are "
                                "read from Secrets you create.")
    lock = col_lock.checkbox("Pin every package with hashes", value=True,
                             key="deploy_docker_lock",
                             help="requirements.lock for the image, transitive packages "
                                  "too. Needs the package index (PyPI or UV_INDEX_URL).")
    shadow, canary = _bundle_challenger(store, name, version)
    try:
        dockerbundle.preflight(store, f"{name}@{version}")
    except FixativeError as exc:
        st.error(f"No Docker bundle for this version: {exc.message}")
        return
    if shadow or canary:
        from core.deploy import pair as pairing

        try:
            pairing.plan(store, (name, version, store.meta(name, version)),
                         pairing.parse_request(shadow, canary) or ("", "", None),
                         trusted=(), engine="auto", with_s3=k8s)
        except FixativeError as exc:
            st.error(f"No Docker bundle with this challenger: {exc.message}")
            return

    ref = f"{name}@{version}"
    if lock:
        # resolving the lock asks the package index: built on request, errors shown here
        prepared = st.session_state.get(_PREPARED)
        wanted = (ref, int(workers), int(port), k8s, shadow, canary)
        if st.button("Prepare the bundle (pins every package; takes a few seconds)",
                     key="deploy_docker_prepare"):
            with st.spinner("Pinning every package with hashes…"):
                try:
                    data = dockerbundle.bundle_zip(store, ref, workers=int(workers),
                                                   port=int(port), k8s=k8s, lock=True,
                                                   shadow=shadow, canary=canary)[1]
                except FixativeError as exc:
                    st.error(f"No Docker bundle: {exc.message}")
                    data = None
            prepared = st.session_state[_PREPARED] = (wanted, data) if data else None
        if prepared and prepared[0] == wanted:
            st.download_button("Download the Docker bundle (.zip)", data=prepared[1],
                               file_name=f"{name}-{version}-docker.zip",
                               mime="application/zip", key="deploy_docker_download",
                               on_click="ignore")
    else:
        def make_zip() -> bytes:
            return dockerbundle.bundle_zip(store, ref, workers=int(workers), port=int(port),
                                           k8s=k8s, lock=False, shadow=shadow,
                                           canary=canary)[1]

        st.download_button("Download the Docker bundle (.zip)", data=make_zip,
                           file_name=f"{name}-{version}-docker.zip", mime="application/zip",
                           key="deploy_docker_download", on_click="ignore")
    flags = ((" --k8s" if k8s else "") + ("" if lock else " --no-lock")
             + (f" --shadow {shadow}" if shadow else "") + (f" --canary {canary}" if canary
                                                             else ""))
    st.caption(f"Or on the command line: `python -m core docker {name}@{version} OUT_DIR"
               f"{flags}`. Then `docker build -t IMAGE OUT_DIR` and `docker run -p 8080:8080 "
               "IMAGE`" + (", or `kubectl apply -k OUT_DIR/k8s`." if k8s else "."))


def _bundle_challenger(store, name: str, version: str) -> tuple[str | None, str | None]:
    """The bundle's challenger, chosen among the model's other versions: (shadow, canary)
    as the docker command takes them."""
    others = [str(getattr(v, "version", v)) for v in store.versions(name)]
    others = [v for v in others if v != version]
    if not others:
        return None, None
    col_pick, col_mode, col_share = st.columns(3)
    pick = col_pick.selectbox("Challenger in the bundle", ["none", *reversed(others)],
                              key="deploy_docker_challenger",
                              help="Another version served next to this one: in shadow it "
                                   "scores every request in the background, as a canary it "
                                   "answers a share of them.")
    if pick == "none":
        return None, None
    mode = col_mode.selectbox("How it runs", ["shadow", "canary"], key="deploy_docker_mode")
    if mode == "shadow":
        return f"{name}@{pick}", None
    share = col_share.number_input("Share of requests (%)", min_value=1, max_value=99,
                                   value=10, step=1, key="deploy_docker_share")
    return None, f"{name}@{pick}:{int(share)}%"


store = ui.get_store()
st.title("Deploy")
ui.show_flash()
name, version = ui.resolved_ref()
if name is None or version is None:
    if not ui.cached_models():
        st.info("The store has no models yet. Upload one on the Upload page, or add the "
                "example models on the Home page; then serve it from here.")
        st.stop()
    st.info("Choose a model in the sidebar to start an endpoint for it or download its "
            "Docker bundle.")
    endpoints_section(store)
    fleet_section(store)
    st.stop()

start_section(store, name, version)
endpoints_section(store)
fleet_section(store)
history_section(store, name)
docker_section(store, name, version)
