"""JSON on a real Dovecot (issue 12): an on_session_start handler parses a
userdb field that holds JSON and decides by it, and an audit record carries a
payload made by JSON.generate."""

import json
import os

from harness import DovecotTestCase, Dovecot

POLICY = r"""
Dovecot.on_session_start do |s|
  begin
    policy = JSON.parse(s["mruby_policy"] || "{}", symbolize_names: true)
  rescue JSON::ParserError => e
    Dovecot.log.warning("policy: bad mruby_policy for #{s.user}: #{e.message}")
    policy = {}
  end
  s.deny("IMAP is off for this account") if policy[:imap] == false && s.service == "imap"
  Dovecot.audit("policy.session",
                policy: JSON.generate(policy.merge(user: s.user, seen: policy.keys.size)))
end
"""

# passwd-file extra fields are space-separated: no spaces inside the JSON.
USERS = {
    "alice": {"mruby_policy": '{"imap":true,"tags":["vip","caf\\u00e9"],"quota":{"mb":1024}}'},
    "bob": {"mruby_policy": '{"imap":false}'},
    "carol": {"mruby_policy": '{"imap":true,}'},
}


class JsonTest(DovecotTestCase):
    def start_dovecot(self):
        d = Dovecot(scripts={"policy.rb": POLICY}, users=USERS)
        path = os.path.join(d.dir, "audit.log")
        os.chmod(d.dir, 0o777)   # mail processes (nobody) create the audit file
        d.plugin["mruby_audit"] = "file:" + path
        self.addCleanup(d.cleanup)
        d.start()
        return d, path

    def records(self, path):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        return [json.loads(line.decode("utf-8")) for line in lines]

    def test_a_userdb_field_of_json_decides_and_the_audit_payload_is_json(self):
        d, path = self.start_dovecot()
        alice = d.imap("alice")
        self.assertEqual(alice.select("INBOX")[0], "OK")
        alice.logout()
        # bob's field says no IMAP: refused at session start, by his JSON.
        self.assertLoginSessionRefused(d, "bob")
        d.wait_for_log(r"imap\(bob\).*IMAP is off for this account")
        # carol's field is not valid JSON: the script rescues JSON::ParserError.
        carol = d.imap("carol")
        self.assertEqual(carol.select("INBOX")[0], "OK")
        carol.logout()
        d.wait_for_log(r"imap\(carol\).*policy: bad mruby_policy for carol: parse error at "
                       r"line 1, column 14: syntax error while parsing object key")
        recs = {r["user"]: r for r in self.records(path) if r["kind"] == "policy.session"}
        self.assertEqual(json.loads(recs["alice"]["policy"]),
                         {"imap": True, "tags": ["vip", "café"], "quota": {"mb": 1024},
                          "user": "alice", "seen": 3})
        self.assertEqual(json.loads(recs["carol"]["policy"]), {"user": "carol", "seen": 0})
        # deny records the verdict; the handler goes on to its audit line.
        self.assertEqual(json.loads(recs["bob"]["policy"]),
                         {"imap": False, "user": "bob", "seen": 1})


if __name__ == "__main__":
    import unittest
    unittest.main()
