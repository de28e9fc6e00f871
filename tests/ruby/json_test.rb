# JSON (src/mruby/bind_json.cpp), the subset of Ruby's json library that
# docs/ruby-api.md lists, tested as Ruby's own test/json tests do
# (json_parser_test.rb, json_generator_test.rb): the same inputs, the same
# answers.

test "parse: literals and numbers" do
  assert_equal nil, JSON.parse("null")
  assert_equal true, JSON.parse("true")
  assert_equal false, JSON.parse("false")
  assert_equal 23, JSON.parse("23")
  assert_equal -23, JSON.parse("  -23  ")
  assert_equal 0, JSON.parse("0")
  assert_equal 3.141, JSON.parse("3.141")
  assert_equal -3.141, JSON.parse("-3.141")
  assert_equal 3.141e10, JSON.parse("3.141e10")
  assert_equal 3.141e-10, JSON.parse("3.141e-10")
  assert_equal Float, JSON.parse("1.0").class
  assert_equal Integer, JSON.parse("1").class
end

test "parse: big numbers" do
  # (compared as text: mruby 3.1's == is unreliable for literals near 2**63)
  assert_equal Integer, JSON.parse("9223372036854775807").class
  assert_equal "9223372036854775807", JSON.parse("9223372036854775807").to_s
  assert_equal "-9223372036854775808", JSON.parse("-9223372036854775808").to_s
  assert_equal "[-9223372036854775808]", JSON.generate(JSON.parse("[-9223372036854775808]"))
  # Beyond 64 bits an integer becomes a Float (Ruby would make a Bignum).
  big = JSON.parse("9223372036854775808")
  assert_equal Float, big.class
  assert_equal 9223372036854775808.0, big
  assert_equal Float, JSON.parse("123456789012345678901234567890").class
  assert_equal Float, JSON.parse("-123456789012345678901234567890").class
end

test "parse: arrays and objects" do
  assert_equal [], JSON.parse("[]")
  assert_equal [], JSON.parse("  [  ]  ")
  assert_equal [1, "a", nil, true, [2.5]], JSON.parse('[1,"a",null,true,[2.5]]')
  assert_equal({}, JSON.parse("{}"))
  assert_equal({ "a" => 1, "b" => [true, false] }, JSON.parse('{"a": 1, "b": [true, false]}'))
  assert_equal({ "a" => { "b" => { "c" => nil } } }, JSON.parse('{"a":{"b":{"c":null}}}'))
  assert_equal({ "a" => 2 }, JSON.parse('{"a":1,"a":2}'))   # the last duplicate wins
  assert_equal String, JSON.parse('{"k":1}').keys.first.class
end

test "parse: symbolize_names" do
  assert_equal({ a: 1, b: { c: [{ d: nil }] } },
               JSON.parse('{"a":1,"b":{"c":[{"d":null}]}}', symbolize_names: true))
  assert_equal({ "a" => 1 }, JSON.parse('{"a":1}', symbolize_names: false))
  assert_raises(ArgumentError, "symbolize_names") { JSON.parse("{}", create_additions: true) }
end

test "parse: escapes, unicode and surrogate pairs" do
  assert_equal "\"\\/\b\f\n\r\t", JSON.parse('"\\"\\\\\\/\\b\\f\\n\\r\\t"')
  assert_equal "é", JSON.parse('"\\u00e9"')
  assert_equal "é", JSON.parse('"é"')
  assert_equal "\u20AC", JSON.parse('"\\u20ac"')
  assert_equal "\u{1D11E}", JSON.parse('"\\ud834\\udd1e"')   # a surrogate pair: G clef
  assert_equal "\xF0\x9D\x84\x9E", JSON.parse('"\\ud834\\udd1e"')
  assert_equal ["\u0000"], JSON.parse('["\\u0000"]')
end

test "parse: invalid JSON raises JSON::ParserError naming the position" do
  ['', ' ', '[', '[1,]', '{"a":}', '{"a" 1}', '{a:1}', "[1] x", 'nul', "'a'", '[01]',
   '"\\x"', '"\\ud834"', '[1.]', '[.5]', '[NaN]', '[Infinity]', '[-Infinity]', "\"a\nb\"",
   '[1 2]', '{"a":1,}', "\"\xff\""].each do |bad|
    assert_raises(JSON::ParserError) { JSON.parse(bad) }
  end
  e = assert_raises(JSON::ParserError) { JSON.parse('{"a": tru}') }
  assert e.message.include?("column"), "message names the position: #{e.message}"
  assert_raises(JSON::ParserError, "line 2") { JSON.parse("[1,\n  x]") }
  assert_raises(TypeError) { JSON.parse(nil) }
  e = assert_raises(JSON::ParserError) { JSON.parse('{"quota": 1024,}') }   # docs/ruby-api.md
  assert_equal "parse error at line 1, column 16: syntax error while parsing object key - " \
               "unexpected '}'; expected string literal", e.message
end

test "error classes as Ruby's json has them" do
  assert_equal StandardError, JSON::JSONError.superclass
  assert_equal JSON::JSONError, JSON::ParserError.superclass
  assert_equal JSON::ParserError, JSON::NestingError.superclass
  assert_equal JSON::JSONError, JSON::GeneratorError.superclass
  assert_equal 100, JSON::MAX_NESTING
end

test "parse: nesting deeper than 100 raises JSON::NestingError" do
  assert_equal 100, depth_of(JSON.parse("[" * 100 + "]" * 100))
  e = assert_raises(JSON::NestingError) { JSON.parse("[" * 101 + "]" * 101) }
  assert_equal "nesting of 101 is too deep", e.message
  assert_raises(JSON::NestingError) { JSON.parse('{"a":' * 101 + "1" + "}" * 101) }
  assert_raises(JSON::NestingError) { JSON.parse("[" * 100_000) }
end

def depth_of(value)
  depth = 0
  while value.is_a?(Array)
    depth += 1
    value = value.first
  end
  depth
end

test "generate: each type" do
  assert_equal "null", JSON.generate(nil)
  assert_equal "true", JSON.generate(true)
  assert_equal "false", JSON.generate(false)
  assert_equal "42", JSON.generate(42)
  assert_equal "-12345678901234", JSON.generate(-12345678901234)
  assert_equal "1.5", JSON.generate(1.5)
  assert_equal "1.0", JSON.generate(1.0)
  assert_equal '"a"', JSON.generate("a")
  assert_equal '"sym"', JSON.generate(:sym)
  assert_equal '[1,"two",3.0,null,[]]', JSON.generate([1, "two", 3.0, nil, []])
  assert_equal '{"a":1,"b":{"c":[true]}}', JSON.generate({ "a" => 1, "b" => { "c" => [true] } })
  assert_equal '{"a":1,"2":2,"nil":null}', JSON.generate({ a: 1, 2 => 2, "nil" => nil })
  assert_equal "{}", JSON.generate({})
end

test "generate: escapes as Ruby's json does" do
  assert_equal '"\\"\\\\/\\b\\f\\n\\r\\t"', JSON.generate("\"\\/\b\f\n\r\t")
  assert_equal '"\\u0000\\u001f"', JSON.generate("\u0000\u001f")
  assert_equal '"é€𝄞"', JSON.generate("é€\u{1D11E}")
  assert_raises(JSON::GeneratorError, "utf-8") { JSON.generate("\xff") }
end

test "generate: NaN and Infinity raise JSON::GeneratorError" do
  assert_raises(JSON::GeneratorError, "NaN") { JSON.generate(0.0 / 0.0) }
  assert_raises(JSON::GeneratorError, "Infinity") { JSON.generate([1.0 / 0.0]) }
  assert_raises(JSON::GeneratorError, "-Infinity") { JSON.generate({ "x" => -1.0 / 0.0 }) }
end

test "generate: nesting deeper than 100 raises JSON::NestingError, a cycle too" do
  deep = []
  99.times { deep = [deep] }
  assert_equal "[" * 100 + "]" * 100, JSON.generate(deep)
  assert_raises(JSON::NestingError, "nesting of 101 is too deep") { JSON.generate([deep]) }
  cycle = []
  cycle << cycle
  assert_raises(JSON::NestingError) { JSON.generate(cycle) }
  loop_hash = {}
  loop_hash["self"] = loop_hash
  assert_raises(JSON::NestingError) { loop_hash.to_json }
end

class Point
  def initialize(x, y)
    @x = x
    @y = y
  end

  def to_s
    "(#{@x}, #{@y})"
  end
end

class Tagged
  def to_json(*)
    { "tag" => 1 }.to_json
  end
end

test "generate: other objects are their to_s, or their own to_json" do
  assert_equal '"(1, 2)"', JSON.generate(Point.new(1, 2))
  assert_equal '[{"tag":1}]', JSON.generate([Tagged.new])
  assert_equal '"1..2"', (1..2).to_json
end

test "to_json on each type" do
  assert_equal "null", nil.to_json
  assert_equal "true", true.to_json
  assert_equal "false", false.to_json
  assert_equal "1", 1.to_json
  assert_equal "2.5", 2.5.to_json
  assert_equal '"x"', "x".to_json
  assert_equal '"x"', :x.to_json
  assert_equal "[1,2]", [1, 2].to_json
  assert_equal '{"k":"v"}', { k: "v" }.to_json
end

test "pretty_generate" do
  assert_equal "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {}\n}",
               JSON.pretty_generate({ "a" => 1, "b" => [1, 2], "c" => {} })
  assert_equal "[]", JSON.pretty_generate([])
  assert_equal '"x"', JSON.pretty_generate("x")
end

test "round trips" do
  values = [
    nil, true, 1, -1.5, "", "a\"b\\c\n", "é\u{1F600}",
    [1, [2, [3, []]], {}],
    { "user" => "a@example.com", "quota" => { "mb" => 1024, "warn" => 0.9 }, "tags" => ["x", nil] },
  ]
  values.each do |value|
    assert_equal value, JSON.parse(JSON.generate(value))
    assert_equal value, JSON.parse(JSON.pretty_generate(value))
    assert_equal value, JSON.parse(value.to_json)
  end
  assert_equal({ a: [1] }, JSON.parse(JSON.generate({ a: [1] }), symbolize_names: true))
end

class Shrinker
  def initialize(owner)
    @owner = owner
  end

  def to_s
    @owner.clear   # the containers being written lose their members
    "gone"
  end
end

test "generate: a to_s that empties the containers being written" do
  inner = [1, 2]
  outer = [inner]
  inner << Shrinker.new(outer)
  inner << Shrinker.new(inner)
  assert_equal '[[1,2,"gone","gone"]]', JSON.generate(outer)
  assert_equal [[], []], [outer, inner]
end

test "JSON in an auth process handler" do
  Dovecot.on_auth do |auth|
    blocked = JSON.parse('{"nets": ["192.0.2.8"]}')["nets"]
    auth.reject(JSON.generate({ ip: auth.remote_ip.to_s })) if blocked.include?(auth.remote_ip.to_s)
  end
  fire :auth, remote_ip: "192.0.2.8" do |answer|
    assert_equal 'reject: {"ip":"192.0.2.8"}', answer
  end
end
