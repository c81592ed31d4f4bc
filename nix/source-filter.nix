# Which files of the checkout become the package's source. Paths are compared
# relative to the checkout's root, so only the build output folders at the top
# (and fuzz/'s own) are dropped: a source folder deeper down that happens to
# share such a name stays in. tests/suite/contrib.rs evaluates this filter over every
# file git tracks.
{ root }:
path: type:
let
  rootStr = toString root;
  p = toString path;
  rel = if p == rootStr then "" else builtins.substring (builtins.stringLength rootStr + 1) (-1) p;
  under = dir: rel == dir || builtins.substring 0 (builtins.stringLength dir + 1) rel == dir + "/";
  output = builtins.any under [ "target" "result" ".git" "fuzz/target" "fuzz/corpus" "fuzz/artifacts" ];
  nixFile = builtins.match ".*\\.nix" rel != null;
in
!output && !nixFile
