# The extension gems of mruby's standard library (String/Array/Hash extras,
# Time, Struct, Math, sprintf, Enumerator ...) are initialised on first use,
# not at VM start: per-session start-up is on the login path. The first
# missing method or constant loads them all, removes these hooks again and
# retries, so scripts see the full standard library and, after the first
# miss, mruby's own NoMethodError and NameError. See docs/architecture.md.

module Dovecot
  # Loads the extension gems once; true when this call loaded them.
  def self.__extend_library
    return false unless __load_extensions
    Kernel.remove_method(:method_missing)
    Kernel.remove_method(:respond_to_missing?)
    Module.remove_method(:const_missing)
    Module.__send__(:alias_method, :const_missing, :__dmr_core_const_missing)
    true
  end
end

module Kernel
  def method_missing(name, *args, &block)
    Dovecot.__extend_library
    __send__(name, *args, &block)
  end

  def respond_to_missing?(name, include_private = false)
    Dovecot.__extend_library && respond_to?(name, include_private)
  end

  # Core's version cannot build an Enumerator; the enumerator gem replaces it.
  def to_enum(*args, &block)
    Dovecot.__extend_library
    to_enum(*args, &block)
  end
  alias enum_for to_enum
end

class Module
  alias __dmr_core_const_missing const_missing
  def const_missing(name)
    Dovecot.__extend_library
    return const_get(name) if const_defined?(name)
    return Object.const_get(name) if Object.const_defined?(name)
    __dmr_core_const_missing(name)
  end
end

# Core methods that an extension gem replaces with a wider form: the core
# form serves the common call; the wider one loads the extensions first.
module Enumerable
  alias __dmr_core_any? any?
  def any?(*pattern, &block)
    return __dmr_core_any?(&block) if pattern.empty?
    Dovecot.__extend_library
    any?(*pattern, &block)
  end

  alias __dmr_core_all? all?
  def all?(*pattern, &block)
    return __dmr_core_all?(&block) if pattern.empty?
    Dovecot.__extend_library
    all?(*pattern, &block)
  end
end

class Array
  alias __dmr_core_index index
  def index(*args, &block)
    return __dmr_core_index(*args) unless args.empty?
    Dovecot.__extend_library
    index(*args, &block)
  end
end

class Range
  alias __dmr_core_first first
  def first(*n)
    return __dmr_core_first if n.empty?
    Dovecot.__extend_library
    first(*n)
  end

  alias __dmr_core_last last
  def last(*n)
    return __dmr_core_last if n.empty?
    Dovecot.__extend_library
    last(*n)
  end
end
