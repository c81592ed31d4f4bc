# chanvault, built from this checkout.
#   nix-build -E 'with import <nixpkgs> {}; callPackage ./nix/package.nix {}'
{ lib, rustPlatform, protobuf }:

rustPlatform.buildRustPackage {
  pname = "chanvault";
  version = "0.1.0";

  src = lib.cleanSourceWith {
    src = ../.;
    filter = import ./source-filter.nix { root = ../.; };
  };

  cargoLock.lockFile = ../Cargo.lock;

  # build.rs compiles lnd's lightning.proto with protox (pure Rust); protobuf is
  # here for tonic's well-known types only.
  nativeBuildInputs = [ protobuf ];

  # The test suite needs age, restic, rclone, promtool, systemd-analyze and OpenBao
  # (see .ci/run); the NixOS test (nix/test.nix) exercises the package instead.
  doCheck = false;

  meta = {
    description = "Lightning channel backup and key-escrow agent for LND";
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "chanvault";
    platforms = lib.platforms.linux;
  };
}
