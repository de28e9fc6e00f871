# Regexp and MatchData (src/mruby/bind_regexp.cpp, mrblib/regexp.rb): the
# subset of Ruby's that docs/ruby-api.md "Regexp" lists, tested as Ruby's own
# test/ruby/test_regexp.rb and test_string.rb do: the same inputs, the same
# answers.

test "literals and Regexp.new" do
  assert_equal Regexp, /a/.class
  assert_equal "a+b", /a+b/.source
  assert_equal 0, /a/.options
  assert_equal Regexp::IGNORECASE | Regexp::MULTILINE | Regexp::EXTENDED, /a/imx.options
  assert_equal "/a\\/b/i", %r{a/b}i.inspect
  assert_equal "(?i-mx:ab)", /ab/i.to_s
  x = "b+"
  assert_equal "ab+c", /a#{x}c/.source
  assert_equal(/abc/, Regexp.new("abc"))
  assert_equal(/abc/i, Regexp.new("abc", Regexp::IGNORECASE))
  assert_equal(/abc/i, Regexp.new("abc", true))
  assert_equal(/abc/mx, Regexp.new("abc", "mx"))
  assert_equal(/abc/i, Regexp.new(/abc/i))
  assert_equal(/abc/, Regexp.compile("abc"))
  # A literal is compiled once (the last 64 patterns are kept) and frozen.
  a = []
  2.times { a << /lit(?<x>e)ral/i }
  assert_same a[0], a[1]
  assert a[0].frozen?
  assert_equal "E", a[0].match("LITERAL")[:x]
  assert !Regexp.new("abc").frozen?
  copy = /a(b)/i.dup
  assert_equal "B", copy.match("AB")[1]
  assert_equal(/a(b)/i, copy)
  assert_equal "b", /a(b)/.clone.match("ab")[1]
  assert_raises(TypeError, "uninitialized Regexp") { Regexp.allocate.match("a") }
  70.times { |i| Regexp.compile("p#{i}") }
  assert_equal "p3", Regexp.compile("p3").source
  assert /a/i.casefold?
  assert !/a/.casefold?
  assert_raises(RegexpError) { Regexp.new("(") }
  assert_raises(RegexpError, "premature end of char-class") { Regexp.new("[a") }
  assert_raises(ArgumentError) { Regexp.new("a", "q") }
  assert_equal "a\\.b\\*c\\ d\\n", Regexp.escape("a.b*c d\n")
  assert_equal "\\[\\]\\{\\}\\(\\)\\|\\-\\?\\+\\^\\$\\#\\\\", Regexp.quote("[]{}()|-?+^$#\\")
  assert_equal(/a|b\.c/, Regexp.union("a", "b.c"))
  assert Regexp.union(/a/i, "b").match?("A")
end

test "=~, !~, match?, ===" do
  assert_equal 0, /foo/ =~ "foo"
  assert_equal 3, /bar/ =~ "foobar"
  assert_equal nil, /baz/ =~ "foobar"
  assert_equal nil, /a/ =~ nil
  assert_equal 2, "xxfoo" =~ /foo/
  assert_equal false, "foo" !~ /foo/
  assert_equal true, "foo" !~ /bar/
  assert_raises(TypeError) { "foo" =~ "foo" }
  assert_equal true, /foo/.match?("foo")
  assert_equal false, /foo/.match?("bar")
  assert_equal false, /foo/.match?(nil)
  assert_equal true, "foobar".match?(/bar/)
  assert_equal false, "foobar".match?(/bar/, 4)
  assert_equal true, "foobar".match?("o+b")
  assert_equal true, :foobar.match?(/bar/)
  assert_equal 3, :foobar =~ /bar/
  assert_equal true, /foo/ === "xfoo"
  assert_equal true, /foo/ === :foo
  assert_equal false, /foo/ === 1
  assert_equal false, /foo/ === nil
  kind = case "user@example.com"
         when /\A[^@]+@example\.org\z/ then :org
         when /\A[^@]+@example\.com\z/ then :com
         end
  assert_equal :com, kind
end

test "options: i, m, x" do
  assert_equal 0, /ABC/i =~ "abc"
  assert_equal nil, /ABC/ =~ "abc"
  assert_equal nil, /a.b/ =~ "a\nb"
  assert_equal 0, /a.b/m =~ "a\nb"
  assert_equal 0, /a b # comment
                  c/x =~ "abc"
  assert_equal 1, /^b/ =~ "a\nb" ? 1 : nil   # ^ and $ are line anchors, as in Ruby
  assert_equal nil, /\Ab/ =~ "a\nb"
  assert_equal 2, /b\z/ =~ "a\nb"
end

test "MatchData" do
  m = /(.)(.)(\d+)(\d)/.match("THX1138.")
  assert_equal MatchData, m.class
  assert_equal "HX1138", m[0]
  assert_equal ["HX1138", "H", "X", "113", "8"], m.to_a
  assert_equal ["H", "X", "113", "8"], m.captures
  assert_equal "H", m[1]
  assert_equal "8", m[-1]
  assert_equal ["H", "X"], m[1, 2]
  assert_equal nil, m[5]
  assert_equal 5, m.size
  assert_equal 5, m.length
  assert_equal 1, m.begin(0)
  assert_equal 7, m.end(0)
  assert_equal [2, 3], m.offset(2)
  assert_equal "T", m.pre_match
  assert_equal ".", m.post_match
  assert_equal "HX1138", m.to_s
  assert_equal "THX1138.", m.string
  assert m.string.frozen?
  assert_equal(/(.)(.)(\d+)(\d)/, m.regexp)
  assert_equal '#<MatchData "HX1138" 1:"H" 2:"X" 3:"113" 4:"8">', m.inspect
  assert_equal nil, /x/.match("abc")
  assert_equal nil, /(a)|(b)/.match("b")[1]
  assert_equal nil, /(a)|(b)/.match("b").begin(1)
  assert_equal "b", /b/.match("abcb", 2)[0]
  assert_equal 3, /b/.match("abcb", 2).begin(0)
  assert_equal "c", /./.match("abc", -1)[0]
  assert_equal "yes", /a/.match("a") { |md| md[0] == "a" ? "yes" : "no" }
  assert_raises(IndexError) { m.begin(9) }
end

test "named captures" do
  m = /(?<user>[^@]+)@(?<domain>.+)/.match("alice@example.com")
  assert_equal "alice", m[:user]
  assert_equal "example.com", m["domain"]
  assert_equal ["user", "domain"], m.names
  assert_equal({ "user" => "alice", "domain" => "example.com" }, m.named_captures)
  assert_equal 6, m.begin(:domain)
  assert_equal ["user", "domain"], /(?<user>.)(?<domain>.)/.names
  assert_equal({ "a" => [1], "b" => [2] }, /(?<a>.)(?<b>.)/.named_captures)
  assert_raises(IndexError) { m[:nope] }
  assert_equal '#<MatchData "alice@example.com" user:"alice" domain:"example.com">', m.inspect
  assert_equal "b", /(?<x>a)|(?<x>b)/.match("b")[:x]
  # With a named group, plain groups do not capture (Ruby's rule).
  assert_equal ["a"], /(?<n>a)(b)/.match("ab").captures
  frozen = /(?<d>\d+)/.freeze
  assert_equal "42", frozen.match("a42")[:d]
  assert_equal ["d"], frozen.names
  # Unlike Ruby, `/(?<name>..)/ =~ str` assigns no local variable (mruby's
  # parser has no such rule): the capture is read from $~.
  assert_equal 0, /(?<who>\w+)@/ =~ "bob@example.com"
  assert_raises(NameError) { who }
  assert_equal "bob", $~[:who]
end

test "$~ and $1..$9 (globals of the VM)" do
  assert_equal 2, "abcd" =~ /(c)(d)/
  assert_equal "cd", $~[0]
  assert_equal "c", $1
  assert_equal "d", $2
  assert_equal nil, $3
  assert_equal "c", Regexp.last_match(1)
  /x/ =~ "abc"
  assert_equal nil, $~
  assert_equal nil, $1
  "k=v".match(/(\w)=(\w)/)
  assert_equal "v", $2
  /(a)/.match?("a")   # match? leaves them alone, as in Ruby
  assert_equal "v", $2
  "a-b".sub(/(\w)-(\w)/) { "#{$2}-#{$1}" }
  assert_equal "b", $2
end

test "String#match, index, start_with?" do
  assert_equal "ll", "hello".match(/l+/)[0]
  assert_equal "ll", "hello".match("l+")[0]
  assert_equal nil, "hello".match(/z/)
  assert_equal "o", "hello".match(/[aeiou]/, 2)[0]
  assert_equal 1, "hello".index(/[aeiou]/)
  assert_equal 4, "hello".index(/[aeiou]/, 2)
  assert_equal nil, "hello".index(/z/)
  assert_equal 2, "hello".index("l")
  assert_equal 3, "hello".index("l", 3)
  assert_equal true, "hello".start_with?(/h.l/)
  assert_equal false, "hello".start_with?(/el/)
  assert_equal true, "hello".start_with?("he")
  assert_equal true, "hello".start_with?("x", /h/)
  assert_equal false, "hello".start_with?("x", "y")
end

test "String#scan" do
  assert_equal ["cruel", "world"], "cruel world".scan(/\w+/)
  assert_equal ["cru", "el ", "wor"], "cruel world".scan(/.../)
  assert_equal [["cru"], ["el "], ["wor"]], "cruel world".scan(/(...)/)
  assert_equal [["cr", "ue"], ["l ", "wo"]], "cruel world".scan(/(..)(..)/)
  assert_equal ["", "", ""], "ab".scan(/x*/)
  assert_equal ["a.b"], "xa.by".scan("a.b")
  seen = []
  assert_equal "a1b2", "a1b2".scan(/[a-z](\d)/) { |d| seen << d }
  assert_equal [["1"], ["2"]], seen
  assert_equal ["é", "ü"], "aébü".scan(/[^ab]/)
end

test "String#sub and gsub" do
  assert_equal "h*llo", "hello".sub(/[aeiou]/, "*")
  assert_equal "h*ll*", "hello".gsub(/[aeiou]/, "*")
  assert_equal "h<e>ll<o>", "hello".gsub(/([aeiou])/, '<\1>')
  assert_equal "h{e}ll{o}", "hello".gsub(/(?<v>[aeiou])/, '{\k<v>}')
  assert_equal "h[e]ll[o]", "hello".gsub(/[aeiou]/, '[\0]')
  assert_equal "h[e]ll[o]", "hello".gsub(/[aeiou]/, '[\&]')
  assert_equal "hhllhell", "hello".gsub(/[aeiou]/, '\`')
  assert_equal "h\\\\ll\\\\", "hello".gsub(/[aeiou]/, "\\\\\\\\")   # \\\\ -> two
  assert_equal "104 101 108 108 111 ", "hello".gsub(/./) { |s| "#{s.getbyte(0)} " }
  assert_equal "h3ll0", "hello".gsub(/[eo]/, "e" => "3", "o" => "0")
  assert_equal "hll", "hello".gsub(/[eo]/, "e" => "")
  assert_equal "HELLO", "hello".gsub(/l|h|e|o/) { |s| s.upcase }
  assert_equal "-a-b-", "ab".gsub(/x*/, "-")
  assert_equal "hello", "hello".sub(/z/, "*")
  assert_equal "he!lo", "hello".sub("l", "!")
  assert_equal "he!!o", "hello".gsub("l", "!")
  s = "hello"
  s.gsub!(/l/, "L")
  assert_equal "heLLo", s
  s.sub!(/e/) { "E" }
  assert_equal "hELLo", s
  assert_equal nil, "abc".sub!(/z/, "y")
  assert_equal "user", "user@example.com".sub(/@.*\z/, "")
  assert_raises(ArgumentError) { "a".sub(/a/) }
end

test "String#split" do
  assert_equal ["a", "b", "c"], "a b  c".split(/\s+/)
  assert_equal ["a", "b", "c"], "a,b;c".split(/[,;]/)
  assert_equal ["a", ",", "b"], "a,b".split(/(,)/)
  assert_equal ["h", "e", "l", "l", "o"], "hello".split(//)
  assert_equal ["a", "b c"], "a b c".split(/ /, 2)
  assert_equal ["a", "", "b"], "a,,b,,".split(/,/)
  assert_equal ["a", "", "b", "", ""], "a,,b,,".split(/,/, -1)
  assert_equal [], "".split(/,/)
  assert_equal ["", "a"], ",a".split(/,/)
  assert_equal ["a", "b"], "a b".split(" ")
end

test "invalid UTF-8 is refused, as Ruby's" do
  assert_raises(ArgumentError, "invalid byte sequence") { /a/ =~ "a\xff" }
  assert_equal 1, /é/ =~ "aé"
  assert_equal "é", /./.match("é")[0]
end
