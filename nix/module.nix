# NixOS module: services.chanvault.
#
#   imports = [ ./nix/module.nix ];
#   services.chanvault = {
#     enable = true;
#     settings = {
#       lnd.address = "127.0.0.1:10009";
#       seal.recipients = [ "age1…offline…" ];
#       target = [ { name = "pbs"; kind = "dir"; path = "/srv/pbs-pickup/chanvault"; } ];
#     };
#     credentials = {
#       "tls.cert" = "/var/lib/lnd/tls.cert";
#       "chanvault.macaroon" = "/etc/chanvault/chanvault.macaroon";
#     };
#   };
#
# `settings` is rendered to TOML as the config (README "Configuration"). Secrets never go into
# `settings` (it lands in the world-readable Nix store): list their files in `credentials`; each
# becomes LoadCredential=NAME:PATH, and the config names it relative to itself ("tls.cert"), as the
# config is loaded as a credential too (see contrib/systemd/chanvault.service).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.chanvault;
  settingsFormat = pkgs.formats.toml { };

  # Every config key, as in the README's configuration table (tests/suite/contrib.rs compares the two).
  settingsKeys = [
    "state_dir"
    "lnd.address" "lnd.tls_cert" "lnd.macaroon" "lnd.timeout_seconds" "lnd.reconnect_max_seconds" "lnd.pin_mismatch_exit_after" "lnd.restore_macaroon" "lnd.backup_key_file"
    "backup.schedule" "backup.keep"
    "seal.recipients" "seal.recipients_files" "seal.manifest_public_keys"
    "delivery.retry_initial_seconds" "delivery.retry_max_seconds" "delivery.timeout_seconds"
    "delivery.min_interval_ms" "delivery.shutdown_grace_seconds"
    "metrics.enabled" "metrics.listen"
    "target.name" "target.kind" "target.path" "target.repository" "target.password_file"
    "target.cacert" "target.http_credentials_file" "target.host" "target.tags" "target.forget_keep_last"
    "target.timeout_seconds" "target.rclone_config" "target.rclone_program" "target.proxy"
    "target.privacy" "target.privacy_jitter_seconds" "target.privacy_cover_mean_hours"
    "escrow.address" "escrow.cacert" "escrow.mount" "escrow.prefix" "escrow.token_file"
    "escrow.approle_role_id_file" "escrow.approle_secret_id_file" "escrow.approle_mount"
    "escrow.approle_role_name" "escrow.network" "escrow.seal_recipients" "escrow.required"
    "escrow.timeout_seconds" "escrow.proxy"
    "verify.max_age_hours"
    "verify.restore_lnd_version"
  ];

  configFile = settingsFormat.generate "chanvault.toml" cfg.settings;

  credentialLines =
    [ "chanvault.toml:${configFile}" ]
    ++ lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;

  # The state dir, dir targets and local restic repositories (tests/suite/contrib.rs evaluates it).
  readWritePaths = import ./read-write-paths.nix {
    inherit (cfg) stateDirName;
    targets = cfg.settings.target or [ ];
  };

  # The hardening of contrib/systemd/*.service.
  hardening = {
    User = cfg.user;
    Group = cfg.group;
    LoadCredential = credentialLines;
    StateDirectory = cfg.stateDirName;
    StateDirectoryMode = "0700";
    ReadWritePaths = readWritePaths;
    UMask = "0077";
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateIPC = true;
    DevicePolicy = "closed";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    KeyringMode = "private";
    RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged" ];
    SystemCallErrorNumber = "EPERM";
    LimitCORE = 0;
    # As contrib/systemd/*.service: caps with margin over the benches (peak ~100 MiB at 10,000 channels).
    MemoryMax = "512M";
    TasksMax = 256;
    LimitNOFILE = 1024;
  };

  exe = lib.getExe cfg.package;
  cfgArg = "--config %d/chanvault.toml";
  metricsPort = lib.toInt (lib.last (lib.splitString ":" (cfg.settings.metrics.listen or "127.0.0.1:9750")));
in
{
  options.services.chanvault = {
    enable = lib.mkEnableOption "chanvault, the LND channel backup agent";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The chanvault package.";
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      description = ''
        The chanvault config (TOML), one attribute per key of the README's configuration table:
        ${lib.concatStringsSep ", " settingsKeys}.
        `target` is a list of attribute sets. Paths to secrets only, never secrets.
      '';
    };

    credentials = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = {
        "tls.cert" = "/var/lib/lnd/tls.cert";
        "chanvault.macaroon" = "/etc/chanvault/chanvault.macaroon";
        "restic-password" = "/etc/chanvault/restic-password";
      };
      description = "Secret files passed with LoadCredential=NAME:PATH; name them in settings as \"NAME\".";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "chanvault";
      description = "User the units run as.";
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "chanvault";
      description = "Group the units run as.";
    };

    stateDirName = lib.mkOption {
      type = lib.types.str;
      default = "chanvault";
      description = "State directory under /var/lib (settings.state_dir defaults to it).";
    };

    backupTimer = lib.mkOption {
      type = lib.types.str;
      default = "hourly";
      description = "OnCalendar= of chanvault-backup.timer (backup --once).";
    };

    verify.enable = lib.mkEnableOption "the monthly recovery drill (chanvault-verify.timer running `chanvault verify --textfile`)";

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the metrics port (settings.metrics.listen) in the firewall. Nothing else is ever opened.";
    };
  };

  config = lib.mkIf cfg.enable {
    services.chanvault.settings = {
      state_dir = lib.mkDefault "/var/lib/${cfg.stateDirName}";
      lnd.tls_cert = lib.mkDefault "tls.cert";
      lnd.macaroon = lib.mkDefault "chanvault.macaroon";
    };

    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.group;
      home = "/var/lib/${cfg.stateDirName}";
    };
    users.groups.${cfg.group} = { };

    systemd.services.chanvault = {
      description = "chanvault: LND channel backups, sealed and delivered";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" "lnd.service" ];
      wants = [ "network-online.target" ];
      startLimitIntervalSec = 0;
      serviceConfig = hardening // {
        Type = "notify";
        NotifyAccess = "main";
        WatchdogSec = "2min";
        ExecStart = "${exe} watch ${cfgArg}";
        Restart = "on-failure";
        RestartSec = "15s";
        TimeoutStopSec = "90s";
        # As contrib/systemd/chanvault.service: give burst buffers back to the kernel.
        Environment = "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=2";
      };
    };

    systemd.services.chanvault-backup = {
      description = "chanvault: one channel backup export and delivery";
      after = [ "network-online.target" "lnd.service" ];
      wants = [ "network-online.target" ];
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = "${exe} backup --once ${cfgArg}";
        # 3 = unchanged is success; 4 (suspect) and 5 (undelivered) must fail the unit.
        SuccessExitStatus = "3";
        TimeoutStartSec = "15min";
      };
    };

    systemd.timers.chanvault-backup = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.backupTimer;
        RandomizedDelaySec = "10min";
        Persistent = true;
      };
    };

    systemd.services.chanvault-verify = lib.mkIf cfg.verify.enable {
      description = "chanvault: monthly recovery drill";
      after = [ "network-online.target" "lnd.service" ];
      wants = [ "network-online.target" ];
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = "${exe} verify ${cfgArg} --textfile /var/lib/prometheus-node-exporter-text-files/chanvault_verify.prom";
        ReadWritePaths = hardening.ReadWritePaths ++ [ "-/var/lib/prometheus-node-exporter-text-files" ];
        TimeoutStartSec = "1h";
      };
    };

    systemd.timers.chanvault-verify = lib.mkIf cfg.verify.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = "monthly";
        RandomizedDelaySec = "12h";
        Persistent = true;
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ metricsPort ];
  };
}
