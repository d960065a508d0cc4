"""Process-level settings of a serving process (core.serving.process.prepare_process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Imports what a server imports, records the filters, prepares the process, then warns
# twice from one place and once from another: stderr shows what the policy lets through.
PROBE = """
import json, sys, warnings
import numpy, pandas, sklearn, scipy.special  # their imports add filters of their own
import core.serving.process as f
before = len(warnings.filters)
f.prepare_process()
after = [(a, c.__name__, m) for a, _msg, c, m, _l in warnings.filters]
def model_step():
    warnings.warn("feature names are missing", UserWarning)
for _ in range(2):
    model_step()
warnings.warn("a second place", DeprecationWarning)
print(json.dumps({"before": before, "after": after}))
"""


def probe(*flags: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, *flags, "-c", PROBE], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.mark.process
def test_serving_process_keeps_one_default_warning_filter():
    seen, stderr = probe()
    # imports leave many filters; scikit-learn replays each one around every joblib task
    assert seen["before"] > 5
    assert seen["after"] == [["default", "Warning", None]]
    # "default": each warning shown once per place it comes from, deprecations included
    assert stderr.count("feature names are missing") == 1
    assert stderr.count("a second place") == 1


@pytest.mark.process
def test_filters_the_user_asked_for_are_kept():
    seen, stderr = probe("-W", "ignore::UserWarning")
    assert ["ignore", "UserWarning", None] in seen["after"]
    assert len(seen["after"]) == seen["before"]
    assert "feature names are missing" not in stderr


# Starts an app's lifespan in a process that did (argv[1] == "serve") or did not prepare
# itself for serving, after an import-like filter was added; prints the filters.
LIFESPAN = """
import asyncio, json, sys, warnings
import numpy as np
from sklearn.linear_model import Ridge
import core.serving.process as f
from core.model.bundle import bundle
from core.serving.app import create_app
if sys.argv[1] == "serve":
    f.prepare_process()
warnings.filterwarnings("ignore", message="added by a module imported later")
X = np.arange(20.0).reshape(10, 2)
app = create_app(bundle(Ridge().fit(X, X[:, 0]), name="tiny"), log=False, tokens=[])
async def start():
    async with app.router.lifespan_context(app):
        return [(a, c.__name__, m.pattern if m else None) for a, m, c, _, _ in warnings.filters]
print(json.dumps(asyncio.run(start())))
"""


@pytest.mark.process
@pytest.mark.parametrize("mode", ["serve", "library"])
def test_a_started_server_settles_back_to_one_filter(mode):
    done = subprocess.run([sys.executable, "-c", LIFESPAN, mode], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    filters = json.loads(done.stdout)
    late = ["ignore", "Warning", "added by a module imported later"]
    if mode == "serve":
        assert filters == [["default", "Warning", None]]
    else:  # create_app in a notebook or a test: the process's filters are its own
        assert late in filters and len(filters) > 2
