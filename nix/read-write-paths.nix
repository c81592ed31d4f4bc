# The paths chanvault's units may write under ProtectSystem=strict (module.nix): the state
# dir, every dir target and every local restic repository. "-" in front: a share that is not
# mounted, or a repository not made yet, does not stop the unit (chanvault retries that target).
# Plain builtins, no nixpkgs, so that tests/suite/contrib.rs can evaluate it as it is.
{ stateDirName, targets }:

let
  kind = t: t.kind or "";
  isAbsolute = p: builtins.substring 0 1 p == "/";
  dirTargets = builtins.filter (t: kind t == "dir") targets;
  # A restic repository that is a path, not a `rest:` URL. A relative path would resolve next to
  # the config, which the module loads as a read-only credential: give local repositories as
  # absolute paths.
  localRestic = builtins.filter
    (t: kind t == "restic" && isAbsolute (toString (t.repository or "")))
    targets;
in
[ "/var/lib/${stateDirName}" ]
++ map (t: "-${toString t.path}") dirTargets
++ map (t: "-${toString t.repository}") localRestic
