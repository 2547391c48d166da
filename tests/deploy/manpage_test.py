"""manpage_test.py — resnetd(1), generated at build time, documents every
server option and every subcommand, and renders.

  python3 tests/deploy/manpage_test.py RESNETD_BINARY BUILD_DIR/resnetd.1

The expected lists come from the binary itself (`serve --help` prints the
option table, `--help` the subcommands), not from this file, so a new option
or subcommand missing from the page fails here.
"""

import os
import re
import subprocess
import sys
import unittest

BINARY = PAGE = None


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


class ManPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8")
        p = subprocess.run(["man", "-l", "-P", "cat", PAGE], capture_output=True, text=True,
                           env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        # Rendered text: undo hyphenation at line ends so that flags are whole.
        cls.text = re.sub(r"[-\u2010]\n\s+", "-", p.stdout)

    def test_every_option(self):
        help_text = run(BINARY, "serve", "--help")
        flags = set(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.M))
        envs = set(re.findall(r"env (RESNETD_[A-Z0-9_]+)", help_text))
        self.assertGreater(len(flags), 20)
        self.assertEqual(len(flags), len(envs))
        for item in sorted(flags | envs | {"--config", "--print-config", "RESNETD_CONFIG"}):
            self.assertTrue(item in self.text, f"resnetd(1) lacks {item}")

    def test_every_subcommand(self):
        subs = set(re.findall(r"resnetd \[?([a-z]+)", run(BINARY, "--help")))
        self.assertTrue({"serve", "classify", "bench"} <= subs, subs)
        for s in subs:
            self.assertTrue(re.search(rf"(?m)^   {s}$", self.text), f"resnetd(1) has no section for {s}")

    def test_header_and_version(self):
        version = run(BINARY, "--version").split()[-1]
        self.assertTrue(self.text.startswith("RESNETD(1)"), self.text[:80])
        self.assertIn(f"resnetd {version}", self.text)
        for section in ("SYNOPSIS", "COMMANDS", "SERVER OPTIONS", "SIGNALS", "EXIT STATUS", "FILES"):
            self.assertRegex(self.text, rf"(?m)^{section}$")


if __name__ == "__main__":
    BINARY, PAGE = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
