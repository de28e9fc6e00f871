"""An exception whose own Ruby code (message, to_s) runs away, raised by an
on_auth handler in the auth process itself (the mruby passdb, blocking=no):
describing it is bounded like the handler, so that login gets the
mruby_on_error answer and the auth process goes on answering others."""

import unittest

from auth_harness import AuthTestCase

FAST = {"login_trusted_networks": "127.0.0.0/8"}   # no anvil auth penalty between attempts

# An endless loop that allocates: only the time limit can end it.
LOOPING_EXCEPTIONS = """
class SlowError < StandardError
  def message
    list = []
    loop { list << ("x" * 100); list.clear if list.size > 100 }
  end
end
class HugeError < StandardError
  def to_s
    "x" * 100_000_000
  end
end
"""


def policy(error_class):
    return LOOPING_EXCEPTIONS + """
Dovecot.on_auth do |auth|
  raise %s if auth.user == "bob"
end
""" % error_class


class AuthExceptionDescriptionTest(AuthTestCase):
    def test_a_looping_message_fails_that_login_and_the_next_is_answered(self):
        d = self.auth_dovecot(policy("SlowError"),
                              passdb_args="on_error=reject timeout=200ms", settings=FAST)
        # The client's own timeout (10 s) would turn a stalled auth process
        # into socket.timeout, not an IMAP refusal.
        self.assertImapRefused(d, "bob", contains="Access denied by policy")
        d.imap("alice").logout()
        d.pop3("alice").quit()
        d.wait_for_log(r"Error: .*auth handler failed: .*policy\.rb:\d+: timeout: "
                       r"message unavailable: timed out \(SlowError\).*mruby_on_error=reject")
        d.wait_for_log(r"mruby: .*policy\.rb: restarting the script after a failed call")
        # The restarted VM fails bob the same way, and still answers alice.
        self.assertImapRefused(d, "bob", contains="Access denied by policy")
        d.imap("alice").logout()

    def test_a_huge_message_hits_the_memory_limit(self):
        d = self.auth_dovecot(policy("HugeError"),
                              passdb_args="on_error=reject timeout=200ms", settings=FAST)
        self.assertImapRefused(d, "bob", contains="Access denied by policy")
        d.imap("alice").logout()
        d.wait_for_log(r"Error: .*auth handler failed: .*policy\.rb:\d+: memory limit exceeded: "
                       r"message unavailable: exceeded mruby_memory_limit=\d+ bytes \(HugeError\)")


if __name__ == "__main__":
    unittest.main()
