# Regexp and MatchData for scripts, with the String methods that take a
# Regexp (the supported subset of Ruby's; docs/ruby-api.md "Regexp"). The
# engine is Oniguruma (src/mruby/bind_regexp.cpp: Regexp.new, #source,
# #options, #__search). Loaded only when a script names Regexp, MatchData or
# a matching method (a literal /re/ compiles to Regexp.compile).
#
# Offsets are byte offsets, as mruby's String#[] and #index use them here.
# $~ and $1..$9 are globals of the VM (mruby has no frame-local match
# variables): set by Regexp#match, #=~, #===, String#=~, #match, #sub, #gsub,
# #scan, #index with a Regexp; not by match?.
# This file must not name a method of an extension gem (gems.cpp would load
# them all for every script that uses a Regexp): no values_at, to_h, slice,
# union (Regexp.union is C, bind_regexp.cpp) ...
class Regexp
  # A literal /re/flags compiles to Regexp.compile("re", "flags") each time
  # it is evaluated (mruby has no literal objects): the last 64 patterns are
  # kept, frozen (as Ruby's literals are), so a handler does not compile its
  # literals again at every call.
  def self.compile(*args)
    source = args[0]
    return new(*args) unless source.is_a?(String) && args.size <= 2
    key = args.size == 2 ? "#{args[1]}/#{source}" : source
    @compiled ||= {}
    re = @compiled[key]
    return re if re
    re = new(*args).freeze
    @compiled.clear if @compiled.size >= 64
    @compiled[key] = re
  end

  def self.last_match(group = nil)
    m = $~
    return m if group.nil?
    m && m[group]
  end

  def __string(object)
    return object.to_s if object.is_a?(Symbol)
    raise TypeError, "no implicit conversion of #{object.class} into String" unless object.is_a?(String)
    object
  end

  def __match(string, pos = 0, anchored = false)
    string = __string(string)
    pos += string.bytesize if pos < 0
    offsets = __search(string, pos, anchored)
    offsets && MatchData.__new(self, string, offsets)
  end

  def __match_at(string, pos)
    __match(string, pos, true)
  end

  def match(string, pos = 0, &block)
    if string.nil?
      Regexp.__set_last_match(nil)
      return nil
    end
    m = __match(string, pos)
    Regexp.__set_last_match(m)
    return block.call(m) if m && block
    m
  end

  def match?(string, pos = 0)
    return false if string.nil?
    string = __string(string)
    pos += string.bytesize if pos < 0
    !__search(string, pos, false).nil?
  end

  def =~(string)
    m = match(string)
    m && m.begin(0)
  end

  def ===(object)
    return false unless object.is_a?(String) || object.is_a?(Symbol)
    !match(object).nil?
  end

  def ==(other)
    other.is_a?(Regexp) && source == other.source && options == other.options
  end

  def eql?(other)
    self == other
  end

  def hash
    source.hash ^ options
  end

  def casefold?
    (options & IGNORECASE) != 0
  end

  # {"name" => [group, ...]} in the order of the pattern (Oniguruma's
  # own walk has no order).
  def __named_groups
    return @named_groups if @named_groups
    h = {}
    __names.sort { |a, b| a[1][0] <=> b[1][0] }.each { |name, groups| h[name] = groups }
    @named_groups = h unless frozen?   # a frozen Regexp works them out each time
    h
  end

  def names
    __named_groups.keys
  end

  def named_captures
    __named_groups
  end

  def __flags
    flags = ""
    flags << "m" if (options & MULTILINE) != 0
    flags << "i" if (options & IGNORECASE) != 0
    flags << "x" if (options & EXTENDED) != 0
    flags
  end

  def to_s
    on = __flags
    off = ""
    off << "m" if (options & MULTILINE) == 0
    off << "i" if (options & IGNORECASE) == 0
    off << "x" if (options & EXTENDED) == 0
    "(?#{on}#{off.empty? ? "" : "-"}#{off}:#{source})"
  end

  def inspect
    escaped = ""
    i = 0
    src = source
    while i < src.bytesize
      c = src[i]
      if c == "\\" && i + 1 < src.bytesize
        escaped << c << src[i + 1]
        i += 2
        next
      end
      escaped << (c == "/" ? "\\/" : c)
      i += 1
    end
    "/#{escaped}/#{__flags}"
  end
end

class MatchData
  def self.__new(regexp, string, offsets)
    m = allocate
    m.__init(regexp, string, offsets)
    m
  end

  def __init(regexp, string, offsets)
    @regexp = regexp
    @string = string.frozen? ? string : string.dup.freeze
    @offsets = offsets
  end

  attr_reader :regexp, :string

  def __offsets
    @offsets
  end

  def size
    @offsets.size / 2
  end

  def length
    size
  end

  # Group number of `group` (Integer, or the name of a named group: the
  # last of its groups that took part, as Ruby).
  def __index(group)
    if group.is_a?(String) || group.is_a?(Symbol)
      numbers = @regexp.__named_groups[group.to_s]
      raise IndexError, "undefined group name reference: #{group}" unless numbers
      found = numbers[-1]
      numbers.reverse.each do |n|
        if @offsets[2 * n] >= 0
          found = n
          break
        end
      end
      return found
    end
    raise TypeError, "no implicit conversion of #{group.class} into Integer" unless group.is_a?(Integer)
    group += size if group < 0
    group
  end

  def [](group, length = nil)
    return to_a[group, length] if length
    n = __index(group)
    return nil if n < 0 || n >= size
    b = @offsets[2 * n]
    return nil if b < 0
    @string.byteslice(b, @offsets[2 * n + 1] - b)
  end

  def begin(group)
    n = __index(group)
    raise IndexError, "index #{group} out of matches" if n < 0 || n >= size
    b = @offsets[2 * n]
    b < 0 ? nil : b
  end

  def end(group)
    n = __index(group)
    raise IndexError, "index #{group} out of matches" if n < 0 || n >= size
    e = @offsets[2 * n + 1]
    e < 0 ? nil : e
  end

  def offset(group)
    [self.begin(group), self.end(group)]
  end

  def to_a
    a = []
    i = 0
    while i < size
      a << self[i]
      i += 1
    end
    a
  end

  def captures
    a = to_a
    a.shift
    a
  end

  def names
    @regexp.names
  end

  def named_captures
    h = {}
    @regexp.__named_groups.each_key { |name| h[name] = self[name] }
    h
  end

  def pre_match
    @string.byteslice(0, @offsets[0])
  end

  def post_match
    @string.byteslice(@offsets[1], @string.bytesize - @offsets[1])
  end

  def to_s
    self[0]
  end

  def ==(other)
    other.is_a?(MatchData) && @regexp == other.regexp && @string == other.string &&
      @offsets == other.__offsets
  end

  def inspect
    text = "#<MatchData #{self[0].inspect}"
    names = {}
    @regexp.__named_groups.each { |name, numbers| numbers.each { |n| names[n] = name } }
    i = 1
    while i < size
      text << " #{names[i] || i}:#{self[i].inspect}"
      i += 1
    end
    text << ">"
  end
end

class NilClass
  def =~(_other)
    nil
  end
end

class Symbol
  def =~(pattern)
    to_s =~ pattern
  end

  def match(pattern, pos = 0, &block)
    to_s.match(pattern, pos, &block)
  end

  def match?(pattern, pos = 0)
    to_s.match?(pattern, pos)
  end
end

class String
  alias __plain_sub sub
  alias __plain_gsub gsub
  alias __plain_split split
  alias __plain_index index

  def =~(pattern)
    raise TypeError, "wrong argument type String (expected Regexp)" if pattern.is_a?(String)
    pattern =~ self
  end

  def __to_regexp(pattern)
    pattern.is_a?(Regexp) ? pattern : Regexp.new(pattern)
  end

  def match(pattern, pos = 0, &block)
    __to_regexp(pattern).match(self, pos, &block)
  end

  def match?(pattern, pos = 0)
    __to_regexp(pattern).match?(self, pos)
  end

  # Byte length of the character at byte offset `pos` (1 past the end).
  def __char_bytes(pos)
    b = getbyte(pos)
    return 1 if b.nil? || b < 0xc0
    return 2 if b < 0xe0
    return 3 if b < 0xf0
    4
  end

  # Calls block(match) for each non-overlapping match, as Ruby walks them.
  def __each_match(re)
    pos = 0
    while pos <= bytesize
      m = re.__match(self, pos)
      break unless m
      offsets = m.__offsets
      pos = offsets[1] == offsets[0] ? offsets[1] + __char_bytes(offsets[1]) : offsets[1]
      yield m
    end
  end

  def scan(pattern, &block)
    re = pattern.is_a?(Regexp) ? pattern : Regexp.new(Regexp.escape(pattern.to_s))
    result = []
    last = nil
    __each_match(re) do |m|
      last = m
      item = m.size == 1 ? m[0] : m.captures
      if block
        Regexp.__set_last_match(m)
        block.call(item)
      else
        result << item
      end
    end
    Regexp.__set_last_match(last)
    block ? self : result
  end

  # The replacement for one match: a Hash (looked up by the matched text),
  # a block (called with it), or a String with \0 \& \1..\9 \k<name> \` \' \\.
  def __replacement(m, replacement, hash, block)
    return hash[m[0]].to_s if hash
    if block
      Regexp.__set_last_match(m)
      return block.call(m[0]).to_s
    end
    out = ""
    i = 0
    while i < replacement.bytesize
      c = replacement[i]
      if c != "\\" || i + 1 >= replacement.bytesize
        out << c
        i += 1
        next
      end
      d = replacement[i + 1]
      i += 2
      if d >= "0" && d <= "9"
        out << m[d.to_i].to_s
      elsif d == "&"
        out << m[0]
      elsif d == "`"
        out << m.pre_match
      elsif d == "'"
        out << m.post_match
      elsif d == "\\"
        out << "\\"
      elsif d == "k" && replacement[i] == "<" && (close = replacement.__plain_index(">", i))
        out << m[replacement[i + 1, close - i - 1]].to_s
        i = close + 1
      else
        out << "\\" << d
      end
    end
    out
  end

  def __replace_args(args, block)
    if args.size == 2
      r = args[1]
      return [nil, r, nil] if r.is_a?(Hash)
      raise TypeError, "no implicit conversion of #{r.class} into String" unless r.is_a?(String)
      return [r, nil, nil]
    end
    raise ArgumentError, "wrong number of arguments (given #{args.size}, expected 2)" unless args.size == 1 && block
    [nil, nil, block]
  end

  def sub(*args, &block)
    return __plain_sub(*args, &block) unless args[0].is_a?(Regexp)
    replacement, hash, block = __replace_args(args, block)
    m = args[0].match(self)
    return dup unless m
    o = m.__offsets
    byteslice(0, o[0]) + __replacement(m, replacement, hash, block) +
      byteslice(o[1], bytesize - o[1])
  end

  def gsub(*args, &block)
    return __plain_gsub(*args, &block) unless args[0].is_a?(Regexp)
    replacement, hash, block = __replace_args(args, block)
    out = ""
    done = 0
    last = nil
    __each_match(args[0]) do |m|
      last = m
      o = m.__offsets
      out << byteslice(done, o[0] - done) << __replacement(m, replacement, hash, block)
      done = o[1]
    end
    Regexp.__set_last_match(last)
    out << byteslice(done, bytesize - done) if done < bytesize
    out
  end

  def split(*args)
    return __plain_split(*args) unless args[0].is_a?(Regexp)
    re = args[0]
    limit = args[1] || 0
    return [] if empty?
    return [dup] if limit == 1
    parts = []
    start = 0
    __each_match(re) do |m|
      o = m.__offsets
      next if o[1] == 0 && o[0] == 0   # an empty match at the start splits nothing
      if o[0] == o[1] && o[0] >= bytesize
        break
      end
      parts << byteslice(start, o[0] - start)
      m.captures.each { |c| parts << c unless c.nil? }
      start = o[1]
      break if limit > 0 && parts.size >= limit - 1
    end
    parts << byteslice(start, bytesize - start)
    parts.pop while limit == 0 && !parts.empty? && parts[-1].empty?
    parts
  end

  def index(*args)
    return __plain_index(*args) unless args[0].is_a?(Regexp)
    pos = args[1] || 0
    pos += bytesize if pos < 0
    return nil if pos < 0 || pos > bytesize
    m = args[0].match(self, pos)
    m && m.begin(0)
  end
end
