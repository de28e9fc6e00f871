# The extension gems of mruby's standard library (String/Array/Hash extras,
# Time, Struct, Math, sprintf, Enumerator ...) are not loaded at VM start:
# per-session start-up is on the login path. They are loaded, all at once,
# before a script's top level runs when the compiled script names a method
# or constant that only they define (src/mruby/gems.cpp; the names are read
# from libmruby at build time by mrblib/gem_names.cpp). A script that builds
# such a name at run time calls Dovecot.require_gems first. See
# docs/architecture.md and docs/ruby-api.md ("Standard library").

module Dovecot
  # Loads the extension gems (once per VM); true when this call loaded them.
  def self.require_gems
    __load_extensions
  end
end

# Core methods that an extension gem replaces with a wider form: the core
# form serves the common call; the wider one loads the gems first (which
# replace these methods) and calls again. The build fails when a gem replaces
# a core method that is not wrapped here (mrblib/gem_names.cpp). Common
# names on rare receivers: gem_stubs in src/mruby/gem_list.hpp.
module Kernel
  # Core's version cannot build an Enumerator (Array#each without a block
  # calls it); the enumerator gem's can.
  def to_enum(*args, &block)
    Dovecot.require_gems
    to_enum(*args, &block)
  end
  alias enum_for to_enum
end

module Enumerable
  alias __dmr_core_any? any?
  def any?(*pattern, &block)
    return __dmr_core_any?(&block) if pattern.empty?
    Dovecot.require_gems
    any?(*pattern, &block)
  end

  alias __dmr_core_all? all?
  def all?(*pattern, &block)
    return __dmr_core_all?(&block) if pattern.empty?
    Dovecot.require_gems
    all?(*pattern, &block)
  end
end

class Array
  alias __dmr_core_index index
  def index(*args, &block)
    return __dmr_core_index(*args) unless args.empty?
    Dovecot.require_gems
    index(*args, &block)
  end
end

class Range
  alias __dmr_core_first first
  def first(*n)
    return __dmr_core_first if n.empty?
    Dovecot.require_gems
    first(*n)
  end

  alias __dmr_core_last last
  def last(*n)
    return __dmr_core_last if n.empty?
    Dovecot.require_gems
    last(*n)
  end
end
