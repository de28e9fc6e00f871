# The Ruby half of the Dovecot API. The primitives (handler registration,
# event objects, logging) are in src/mruby/bind_*.cpp.

module Dovecot
  VERSION = "0.1.0"

  # Dovecot::Policy, Dovecot::RateLimit ... are compiled in but loaded on
  # first reference, to keep VM start-up (on the login path) short. A hook on
  # Dovecot alone (a script's own const_missing is not touched), so that a
  # name built at run time (Dovecot.const_get(name)) loads its library too.
  def self.const_missing(name)
    return const_get(name) if __load_library(name)
    super
  end

  class Session
    def inspect
      "#<Dovecot::Session user=#{user.inspect} service=#{service} remote_ip=#{remote_ip.inspect}>"
    end
  end

  class Mailbox
    def inspect
      "#<Dovecot::Mailbox name=#{name.inspect}#{readonly? ? ' readonly' : ''}>"
    end
  end
end
