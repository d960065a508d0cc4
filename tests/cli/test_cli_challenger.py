"""``endpoints challenger``: change or stop the challenger of a running endpoint from the
command line; refusals are one line on stderr, exit code 1, and leave the server as it
was."""

from __future__ import annotations

import json
import urllib.request

import pytest
from sklearn.linear_model import LinearRegression

from core.cli.main import main
from core.deploy import endpoints as deploy
from core.model.bundle import bundle
from core.serving.netcheck import free_port
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    board = VersionStore(tmp_path_factory.mktemp("cli-challenger") / "board")
    x = house_data.drop(columns="price")
    info = board.write(bundle(house_model, x, name="house"))
    board.set_alias("house", "production", info.version)
    board.write(bundle(house_model, x, name="house"))
    board.write(bundle(churn_model, churn_data.drop(columns="churned"), name="churn"))
    small = x[list(x.columns[:3])]  # the same task, fewer inputs
    board.write(bundle(LinearRegression().fit(small, house_data["price"]), small,
                       name="small"))
    return board


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def metadata(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=10) as r:
        return json.loads(r.read())


def test_start_change_and_stop_the_challenger(capsys, store):
    board = str(store.url)
    v1, v2 = (v.version for v in store.versions("house"))
    port = free_port()
    code, out, err = run(capsys, "endpoints", "start", "house:production", "--port",
                         str(port), "--shadow", f"house@{v2}", "--store", board)
    assert code == 0, err
    try:
        code, out, _ = run(capsys, "endpoints", "list", "--store", board)
        assert out.strip().splitlines()[1].split()[-2:] == ["shadow", f"house@{v2}"]
        pid = deploy.find_endpoint(store, port).pid

        # refused: one line on stderr, exit 1, the server untouched
        for args, message in [
            (["--shadow", "churn"], "a challenger must do the same task"),
            (["--shadow", "small"], "does not take the champion's inputs"),
            (["--canary", f"house@{v2}:200%"], "outside 0%-100%"),
            (["--canary", f"house@{v2}:nan%"], "is not a number"),
            (["--shadow", "../x"], "not allowed"),
            (["--shadow", "house", "--canary", "house:5%"], "not both"),
            (["--stop", "--shadow", "house"], "not both"),
            ([], "Say what to run"),
            (["--shadow", "y" * 50_000], "characters long"),
        ]:
            code, out, err = run(capsys, "endpoints", "challenger", str(port), *args,
                                 "--store", board)
            assert code == 1 and out == "", (args, out, err)
            assert err.startswith("error: ") and message in err, (args, err)
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        for key in ("zz9", "nothere", "../../x"):
            code, _, err = run(capsys, "endpoints", "challenger", key, "--stop",
                               "--store", board)
            assert code == 1 and f"No endpoint {key!r}" in err
        assert deploy.find_endpoint(store, port).pid == pid
        assert metadata(port)["challenger"]["mode"] == "shadow"

        code, out, err = run(capsys, "endpoints", "challenger", str(port), "--canary",
                             f"house@{v2}:10%", "--store", board)
        assert code == 0, err
        assert out.startswith(f"Restarted house@{v1} (via :production) on port {port} with "
                              f"house@{v2} as a canary (answers 10% of requests)")
        assert metadata(port)["challenger"]["share"] == pytest.approx(0.1)
        code, out, _ = run(capsys, "endpoints", "list", "--json", "--store", board)
        [entry] = json.loads(out)
        assert entry["challenger"] == {"mode": "canary", "name": "house", "version": v2,
                                       "share": 0.1}

        code, out, _ = run(capsys, "endpoints", "challenger", str(port), "--stop",
                           "--store", board)
        assert code == 0 and "with no challenger" in out
        assert "challenger" not in metadata(port)
        code, out, _ = run(capsys, "endpoints", "challenger", str(port), "--stop",
                           "--store", board)
        assert code == 0 and "already runs with no challenger; nothing changed" in out
        code, out, _ = run(capsys, "endpoints", "list", "--json", "--store", board)
        assert json.loads(out)[0]["challenger"] is None
    finally:
        run(capsys, "endpoints", "stop", "--all", "--store", board)
