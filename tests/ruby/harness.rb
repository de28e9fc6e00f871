# The harness of the Ruby tests (tests/ruby/*_test.rb), loaded before each test
# file by tests/unit/ruby_runner_test.cpp, which runs every test in a fresh real
# VM (the plugin's Ruby half as it ships) with its own memory store.
#
#   test "a name", store: :broken do     # store: :memory (default) or :broken
#     assert_equal 1, Dovecot::Counter.incr("k", ttl: 60)
#     fire :auth_result, success: false, remote_ip: "192.0.2.7" do |answer|
#       ...                               # runs after the event; answer: the verdict
#     end                                 # ("continue", "reject: text", ...) or "error: ..."
#   end
#
# fire queues an event; the runner hands it to the VM as Dovecot would (through
# Vm::run, the handlers the test registered) once the current step ended, then
# runs its block. Events: :auth, :auth_result (fields: user, remote_ip, success,
# reason, internal_failure), :imap_command (name, user). The runner talks to the
# harness through log lines starting with "ruby-test ".

module RubyTest
  TESTS = []
  PENDING = []

  class Failure < StandardError; end

  def self.report(text)
    Dovecot.log.info("ruby-test #{text}")
  end

  # Where in a test file the failure happened: the innermost *_test.rb frame.
  def self.location(error)
    trace = error.backtrace || []
    line = trace.find { |frame| frame.include?("_test.rb:") } || trace.first || "?"
    method = line.index(":in ")   # "file:3:in run" -> "file:3"
    method ? line[0, method] : line
  end

  # Runs a step of a test; any failure is reported, not raised.
  def self.guard
    yield
  rescue Exception => e
    kind = e.is_a?(Failure) ? "" : "#{e.class}: "
    report("fail #{location(e)}: #{kind}#{e.message}")
  end

  def self.list
    TESTS.each_with_index do |(name, options), i|
      report("test #{i} #{options[:store] || :memory} #{name}")
    end
  end

  def self.run(index)
    block = TESTS[index][2]
    guard { Assertions.context.instance_eval(&block) }
    next_event
  end

  def self.resume(answer)
    continuation = @waiting
    @waiting = nil
    guard { Assertions.context.instance_exec(answer, &continuation) } if continuation
    next_event
  end

  def self.next_event
    return if PENDING.empty?
    hook, fields, continuation = PENDING.shift
    @waiting = continuation
    report("fire #{hook} " +
           fields.map { |key, value| "#{key}=#{value.to_s.split(' ').join('%20')}" }.join(" "))
  end

  module Assertions
    def self.context
      @context ||= Object.new.extend(self)
    end

    def assert(condition, message = "assertion failed")
      raise Failure, message unless condition
      true
    end

    def assert_equal(expected, actual, message = nil)
      return true if expected == actual
      raise Failure, "#{message && "#{message}: "}expected #{expected.inspect}, got #{actual.inspect}"
    end

    def assert_same(expected, actual)
      return true if expected.equal?(actual)
      raise Failure, "expected the very object #{expected.inspect}, got #{actual.inspect}"
    end

    # `part`: a string the exception's message must contain (mruby has no Regexp).
    def assert_raises(klass, part = nil)
      begin
        yield
      rescue klass => e
        if part && !e.message.include?(part)
          raise Failure, "#{klass} raised with #{e.message.inspect}, not containing #{part.inspect}"
        end
        return e
      end
      raise Failure, "expected #{klass} to be raised"
    end

    # Queues an event for the runner; the block runs after it with the verdict.
    def fire(hook, **fields, &block)
      PENDING << [hook, fields, block]
      nil
    end
  end
end

def test(name, store: :memory, &block)
  RubyTest::TESTS << [name, { store: store }, block]
end
