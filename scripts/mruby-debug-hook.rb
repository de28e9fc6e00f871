# Build configuration for the libmruby the plugins link (scripts/build-mruby.sh).
# It is Debian's own (build_config/default.rb of Debian's mruby source
# package, built by debian/rules with dpkg-buildflags' CFLAGS and -fPIC) plus
# one define: MRB_USE_DEBUG_HOOK, which gives mrb_state a code_fetch_hook the
# watchdog uses to stop a handler that loops without allocating
# (docs/architecture.md, "Time bound"). Same gem box, same toolchain, same
# flags; only the tests and the command-line tools are not built.
MRuby::Build.new do |conf|
  conf.toolchain

  # Before the gem box: every gem's compiler is cloned from these, and the
  # define changes struct mrb_state, so every object must see it.
  conf.compilers.each do |c|
    c.defines << 'MRB_USE_DEBUG_HOOK'
    c.flags << '-fPIC'
  end

  conf.gembox 'default'
end
