"""The wheel that ``pip install`` builds holds every file the installed dashdesk needs."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Folders of the repository that become packages, and where they land in the wheel.
SHIPPED = {"dashdesk/": "dashdesk/", "device/": "device/", "broker_bridge/": "broker_bridge/",
           "server/": "server/", "config/": "dashdesk/defaults/"}


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith(tuple(SHIPPED))]


def test_wheel_holds_every_tracked_file_of_the_packages(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr
    # setuptools warns, screens long, about data folders left out of `packages`; none may be.
    assert "absent from the `packages` configuration" not in build.stderr + build.stdout
    (wheel,) = tmp_path.glob("dashdesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = set()
    for path in tracked_files():
        source = next(s for s in SHIPPED if path.startswith(s))
        expected.add(SHIPPED[source] + path[len(source):])
    missing = sorted(expected - names)
    assert not missing, f"left out of the wheel: {missing}"
    # The pages an admin and a phone need, named so that a wrong glob cannot pass unnoticed.
    for name in ("server/templates/admin/device.html", "server/templates/phone/sw.js",
                 "server/static/app/vendor/mqtt-5.16.0.min.js", "server/static/app/icons/icon-192.png",
                 "dashdesk/defaults/dashdesk.toml", "dashdesk/press.schema.json",
                 "server/static/swagger_ui/swagger-ui-bundle.js", "server/static/swagger_ui/swagger-ui.css",
                 "server/static/swagger_ui/LICENSE", "server/static/api-docs.js", "server/templates/api_docs.html",
                 "server/migrations/versions/0012_web_sessions.py"):
        assert name in names
