# NixOS VM test: the LND simulator runs as a service, chanvault watches it, and a sealed
# backup lands in a dir target.
#   nix-build -E 'with import <nixpkgs> {}; callPackage ./nix/test.nix {}'
# (Not run in CI here: no Nix store or KVM on the build machines; CI only parses it.)
{ pkgs ? import <nixpkgs> { }, ... }:

pkgs.testers.nixosTest {
  name = "chanvault";

  nodes.machine = { config, pkgs, ... }:
    let chanvault = pkgs.callPackage ./package.nix { };
    in {
      imports = [ ./module.nix ];

      # The simulator writes tls.cert and chanvault.macaroon (offchain:read) into its dir.
      systemd.services.lnd-sim = {
        wantedBy = [ "multi-user.target" ];
        before = [ "chanvault.service" ];
        serviceConfig.StateDirectory = "lnd-sim";
        # It reads commands from stdin: open two channels, then keep stdin open.
        script = ''
          (echo "open 2"; sleep infinity) | ${chanvault}/bin/chanvault dev lnd-sim --dir /var/lib/lnd-sim --listen 127.0.0.1:10009
        '';
      };

      services.chanvault = {
        enable = true;
        package = chanvault;
        settings = {
          lnd.address = "127.0.0.1:10009";
          seal.recipients = [ "age1xxpz6zs7lpzcy28fl09q2elgdx0dcfapajzqkp28p6x3xx6x95zql5gr0d" ];
          target = [ { name = "pbs"; kind = "dir"; path = "/srv/pbs/chanvault"; } ];
        };
        credentials = {
          "tls.cert" = "/var/lib/lnd-sim/tls.cert";
          "chanvault.macaroon" = "/var/lib/lnd-sim/chanvault.macaroon";
        };
      };
      systemd.tmpfiles.rules = [ "d /srv/pbs 0755 chanvault chanvault -" ];
      systemd.services.chanvault.after = [ "lnd-sim.service" ];
      systemd.services.chanvault.requires = [ "lnd-sim.service" ];
    };

  testScript = ''
    machine.wait_for_unit("lnd-sim.service")
    machine.wait_for_file("/var/lib/lnd-sim/chanvault.macaroon")
    machine.systemctl("restart chanvault.service")
    machine.wait_for_unit("chanvault.service")
    machine.wait_for_file("/srv/pbs/chanvault/channel.backup.age", timeout=120)
    machine.succeed("grep -Eq '\"channels\": ?2' /srv/pbs/chanvault/channel.backup.json")
    machine.succeed("curl -fsS http://127.0.0.1:9750/metrics | grep -q '^chanvault_lnd_connected 1'")
    machine.succeed("systemctl start chanvault-backup.service")
  '';
}
