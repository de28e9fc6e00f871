"""The README's "Packages" install, executed as written, with the install
test's checks.

Runs inside the throwaway root tests/install/run.sh prepares, started by
tests/package/run.sh with DMR_INSTALL_DEB=/tmp/dmr-deb (the directory
holding the .deb dpkg-buildpackage built). Nothing is built or installed from
the source tree here: the README's package block (in that directory, as an
operator runs it where the .deb is) installs it with apt and copies the
example configuration from the package. The checks are test_install's (eve
refused, brute-force ban on the shared store, session policy, no test
package), plus what the package itself claims: its files (dpkg -L), the
example configuration as the repository has it, and the dependency on the
exact Dovecot ABI it was built against.
"""

import filecmp
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "install"))
import test_install  # noqa: E402

SRC = test_install.SRC
DEB_DIR = os.environ["DMR_INSTALL_DEB"]
PACKAGE = "dovecot-mruby"
EXAMPLES = "/usr/share/dovecot-mruby/conf.d"
CONF_FILES = ["90-mruby.conf", "auth-mruby.conf.ext", "mruby/auth.rb", "mruby/policy.rb"]
# Where each one is in the repository's conf.d/ for this Dovecot (2.4: the
# two configuration files from conf.d/2.4/; the policies are shared).
def conf_source(f):
    return f"2.4/{f}" if test_install.DOVECOT_24 and not f.startswith("mruby/") else f


def readme_package_commands():
    """The install block of README.md's "### Packages" subsection (the
    ```sh block that runs `apt install`), run in the .deb's directory."""
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    section = text.split("\n## Install into Dovecot\n", 1)[1].split("\n## ", 1)[0]
    sub = section.split("\n### Packages\n", 1)[1].split("\n### ", 1)[0]
    # One block per Dovecot version: the 2.4 one copies conf.d/2.4/.
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", sub, re.S)
              if "apt install" in b and ("conf.d/2.4/" in b) == test_install.DOVECOT_24]
    assert len(blocks) == 1, ("README.md: one ```sh block with `apt install` under ### Packages"
                              f" for Dovecot {'2.4' if test_install.DOVECOT_24 else '2.3'}")
    return f"cd {DEB_DIR}\n" + blocks[0]


def sh(cmd):
    return subprocess.run(cmd, shell=True, check=True, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT).stdout


def moduledir():
    return sh('. /usr/lib/dovecot/dovecot-config && echo "$dovecot_moduledir"').strip()


def dovecot_abi():
    with open("/usr/share/dovecot/dovecot-abi") as f:
        return f.read().strip()


# test_install.InstallTest.setUpClass runs this module's block instead.
test_install.readme_install_commands = readme_package_commands
# It removes the test packages with --force-depends; apt refuses to install
# anything while a package's dependency is missing, so their dependents go too.
test_install.TEST_ONLY_PACKAGES = test_install.TEST_ONLY_PACKAGES + ["libgtest-dev", "libgmock-dev"]


class PackageInstallTest(test_install.InstallTest):
    """test_install's checks (test_1 .. test_6) on the packaged install."""

    def test_5_package_lists_the_modules_and_the_example_configuration(self):
        files = set(sh(f"dpkg -L {PACKAGE}").split("\n"))
        mod = moduledir()
        modules = ["lib90_mruby_plugin.so", "lib95_imap_mruby_plugin.so",
                   "lib95_pop3_mruby_plugin.so", "dmr_store_backends.so",
                   "auth/libauthdb_mruby.so", "doveadm/lib10_doveadm_mruby_plugin.so"]
        if test_install.DOVECOT_24:
            # doveconf's declaration of the mruby_* settings.
            modules.append("settings/libmruby_settings.so")
        for f in modules:
            self.assertIn(f"{mod}/{f}", files)
        for f in CONF_FILES:
            src = conf_source(f)
            self.assertIn(f"{EXAMPLES}/{src}", files)
            # As the repository has them, and as the README block copied them.
            self.assertTrue(filecmp.cmp(f"{EXAMPLES}/{src}", f"{SRC}/conf.d/{src}", shallow=False), src)
            dest = f"/etc/dovecot/{f}" if f.startswith("mruby/") else f"/etc/dovecot/conf.d/{f}"
            self.assertTrue(filecmp.cmp(f"{EXAMPLES}/{src}", dest, shallow=False), dest)
        # Nothing into /etc: the package enables nothing by itself.
        self.assertFalse([f for f in files if f.startswith("/etc/")])
        # The doveadm commands come from the packaged plugin.
        self.assertIn("auth.rb", sh("doveadm mruby check /etc/dovecot/mruby/auth.rb"))

    def test_6_depends_on_the_dovecot_abi_it_was_built_for(self):
        abi = f"dovecot-abi-{dovecot_abi()}"
        [deb] = glob.glob(os.path.join(DEB_DIR, f"{PACKAGE}_*.deb"))
        depends = sh(f"dpkg-deb -f {deb} Depends")
        self.assertIn(abi, [d.strip() for d in depends.split(",")])
        shown = sh(f"apt-cache show {PACKAGE}")
        self.assertRegex(shown, rf"(?m)^Depends:.*\b{re.escape(abi)}\b")
        # The running Dovecot is the one that provides it.
        self.assertIn(abi, sh("dpkg-query -W -f='${Provides}' dovecot-core"))

    def test_7_purge_removes_the_modules_and_the_store(self):
        sh(f"apt-get purge -y {PACKAGE}")
        self.assertFalse(os.path.exists(f"{moduledir()}/lib90_mruby_plugin.so"))
        self.assertFalse(os.path.exists("/var/lib/dovecot/mruby"))
        self.assertFalse(os.path.exists("/var/log/dovecot-mruby"))
        # The operator's copies in /etc stay.
        self.assertTrue(os.path.exists("/etc/dovecot/mruby/auth.rb"))

if __name__ == "__main__":
    import unittest
    unittest.main()
