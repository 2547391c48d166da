"""deb_test.py — the Debian package (cpack -G DEB) installed in a fresh
debian:bookworm-slim container.

  DOCKER_HOST=... RESNETD_CI_DEB=build-deb/resnetd_0.1.0_amd64.deb \\
    python3 tests/deploy/deb_test.py NATIVE_RESNETD

Run by scripts/test-containers.sh (ctest label "container"). In one
container (--network host):

- `apt-get install ./resnetd_*.deb` resolves the dependencies dpkg-shlibdeps
  computed (nothing else installs them: the base image has none of the
  libraries), plus man-db and systemd for the checks below. bookworm-slim's
  dpkg excludes man pages; the test lifts that exclusion first, as a user
  who wants man pages does.
- `resnetd --version` prints the package's version.
- `resnetd serve --config /etc/resnetd/resnetd.conf` (the unit's command
  line, run as nobody like the unit's DynamicUser) serves the bundled model
  from /usr/share/resnetd/models, and every example classified over HTTP
  matches the native build.
- `man resnetd` renders and lists every server option and subcommand.
- `systemd-analyze verify` accepts /usr/lib/systemd/system/resnetd.service.
- /etc/resnetd/resnetd.conf is a conffile.
- `dpkg -r` removes every file but the conffile; `dpkg -P` removes that too.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import container_test as ct  # noqa: E402
import deploylib as dl  # noqa: E402

DEB = os.environ.get("RESNETD_CI_DEB", "")
BASE = "debian:bookworm-slim"


def sh(name, script, check=True, timeout=300):
    """Runs script with sh -c in the container; returns (rc, stdout+stderr)."""
    p = subprocess.run(["docker", "exec", name, "sh", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"in container: {script}\n-> {p.returncode}\n{p.stdout[-3000:]}")
    return p.returncode, p.stdout


class Deb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not DEB or not os.path.isfile(DEB):
            raise AssertionError(f"RESNETD_CI_DEB={DEB!r}: no package (scripts/test-containers.sh)")
        cls.port = dl.free_port()
        cls.name = f"resnetd-deb-{cls.port}"
        ct.docker("run", "-d", "--name", cls.name, "--network", "host",
                  "-v", f"{os.path.abspath(DEB)}:/pkg/{os.path.basename(DEB)}:ro",
                  BASE, "sleep", "infinity")
        deb = "/pkg/" + os.path.basename(DEB)
        _, out = sh(cls.name,
                    "rm -f /etc/dpkg/dpkg.cfg.d/docker-slim && apt-get update -qq && "
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                    f"--no-install-recommends {deb} man-db systemd 2>&1")
        cls.install_log = out

    @classmethod
    def tearDownClass(cls):
        ct.docker("rm", "-f", cls.name, check=False)

    def test_1_installed_with_dependencies(self):
        _, st = sh(self.name, "dpkg-query -W -f '${Status} ${Version}' resnetd")
        self.assertEqual(st, "install ok installed 0.1.0")
        _, depends = sh(self.name, "dpkg-query -W -f '${Depends}' resnetd")
        for lib in ("libdnnl2", "libmicrohttpd12", "libjansson4"):  # from dpkg-shlibdeps
            self.assertIn(lib, depends)
        _, ldd = sh(self.name, "ldd /usr/bin/resnetd")
        self.assertNotIn("not found", ldd)
        _, conffiles = sh(self.name, "dpkg-query -W -f '${Conffiles}' resnetd")
        self.assertIn("/etc/resnetd/resnetd.conf", conffiles)
        _, files = sh(self.name, "for f in $(dpkg -L resnetd); do [ -f $f ] && ls -l $f; done")
        print(f"\n{os.path.basename(DEB)}: {os.path.getsize(DEB) / 1e6:.2f} MB; installs:\n{files}",
              file=sys.stderr)

    def test_2_version(self):
        _, out = sh(self.name, "resnetd --version")
        self.assertEqual(out.strip(), "resnetd 0.1.0")

    def test_3_serves_installed_model(self):
        # The unit's command line, as an unprivileged user; --port moves it
        # off 8080 (CLI > file).
        sh(self.name, "cd / && nohup setpriv --reuid=65534 --regid=65534 --clear-groups "
                      "sh -c 'echo $$ > /tmp/srv.pid; exec resnetd serve --config "
                      f"/etc/resnetd/resnetd.conf --port {self.port}' > /tmp/srv.log 2>&1 &")
        base = f"http://127.0.0.1:{self.port}"
        try:
            dl.wait_until(lambda: dl.http_ok(base + "/readyz"), 60, "installed resnetd ready")
        except AssertionError:
            print(sh(self.name, "cat /tmp/srv.log", check=False)[1], file=sys.stderr)
            raise
        models = json.loads(dl.http("GET", base + "/v1/models")[2])["models"]
        self.assertEqual([m["name"] for m in models], ["fashion-mnist"])
        want = ct.native_answers()
        for f in ct.IMAGES:
            with open(os.path.join(ct.EXAMPLES, f), "rb") as fh:
                st, _, body = dl.http("POST", base + "/v1/classify", fh.read())
            self.assertEqual(st, 200, body)
            ct.assert_same(self, json.loads(body)["predictions"], want[f], f)
        # ... and the only model in the container is the installed one.
        _, found = sh(self.name, "find / -xdev -name model.onnx")
        self.assertEqual(found.split(), ["/usr/share/resnetd/models/fashion-mnist/model.onnx"])
        sh(self.name, "kill -TERM $(cat /tmp/srv.pid)")
        # Gone, or a zombie (PID 1 here is `sleep`, which reaps nobody).
        gone = "p=$(cat /tmp/srv.pid); ! kill -0 $p 2>/dev/null || grep -q '^State:.*Z' /proc/$p/status"
        dl.wait_until(lambda: sh(self.name, gone, check=False)[0] == 0, 20,
                      "server exit after SIGTERM")

    def test_4_man_page(self):
        _, page = sh(self.name, "MANWIDTH=100 man -P cat resnetd 2>&1")
        self.assertIn("RESNETD(1)", page)
        help_text = subprocess.run([ct.NATIVE, "serve", "--help"], capture_output=True, text=True,
                                   check=True).stdout
        flags = set(w for w in help_text.split() if w.startswith("--"))
        self.assertGreater(len(flags), 20)
        for flag in flags:
            self.assertIn(flag, page, f"man page lacks {flag}")
        for sub in ("serve", "classify", "infer", "preprocess", "bench", "quantize"):
            self.assertIn(f"resnetd {sub}", page)

    def test_5_unit_verifies(self):
        rc, out = sh(self.name, "systemd-analyze verify /usr/lib/systemd/system/resnetd.service 2>&1",
                     check=False)
        self.assertEqual((rc, out.strip()), (0, ""), out)
        _, unit = sh(self.name, "cat /usr/lib/systemd/system/resnetd.service")
        for directive in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                          "PrivateTmp=yes", "ExecStart=/usr/bin/resnetd serve --config "
                          "/etc/resnetd/resnetd.conf"):
            self.assertIn(directive, unit)
        # SIGHUP means nothing to resnetd: no reload command.
        self.assertNotIn("\nExecReload=", unit)

    def test_9_remove_and_purge(self):
        _, files = sh(self.name, "dpkg -L resnetd")
        owned = [f for f in files.split() if f.startswith(("/usr/bin", "/usr/share/resnetd",
                                                           "/usr/share/man", "/usr/lib/systemd",
                                                           "/etc/resnetd"))]
        sh(self.name, "dpkg -r resnetd")
        left = [f for f in owned if sh(self.name, f"test -f '{f}'", check=False)[0] == 0]
        self.assertEqual(left, ["/etc/resnetd/resnetd.conf"])  # a conffile stays until purge
        rc, _ = sh(self.name, "test -e /usr/share/resnetd", check=False)
        self.assertNotEqual(rc, 0)
        sh(self.name, "dpkg -P resnetd")
        rc, _ = sh(self.name, "test -e /etc/resnetd", check=False)
        self.assertNotEqual(rc, 0)
        _, st = sh(self.name, "dpkg-query -W -f '${Status}' resnetd 2>&1 || true")
        self.assertNotIn("installed", st.replace("not-installed", ""))


if __name__ == "__main__":
    ct.NATIVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
