# env.nix: the drone environment, `ringil.env.mode = "prod" | "dev"`: the seed's prod settings plus what its threats need.
#
# prod = the seed, setting for setting (marked "seed:"), then what the seed's threats call for
# (marked "threat:"): T1 UEFI recovery / offline tampering, T2 cold boot, T3 TPM bus sniffing, and
# "nothing to learn from a captured drone". Every line marked here is listed in nix/audit-map.md
# with the `ringil audit` check that proves it on a running drone; tests/integration/test_nix.py
# keeps the two in step.
#
# This module does not import lanzaboote (the flake's nixosModules.ringil-env does), so that it can be
# evaluated on its own by the tests. prod needs boot.lanzaboote.* to exist. Board specifics (the Jetson's
# serial console and firmware TPM) are in jetson.nix.
#
# Written against nixos-26.05 (the flake's pin): systemd.sleep and systemd.coredump take RFC 42
# `settings` there (their extraConfig options were removed); journald still takes extraConfig.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkIf mkMerge mkForce mkDefault types;
  cfg = config.ringil.env;
  isProd = cfg.mode == "prod";

  # seed: exactly these three.
  seedKernelParams = [ "quiet" "loglevel=0" "console=tty0" ];

  # What the seed removes: every console but the display (tty0). A kernel parameter naming a serial
  # console or an early console, whoever adds it, fails the prod build (assertion below).
  # Virtual terminals (console=ttyN) are the display; anything else after console= is a serial line.
  serialConsoles = builtins.filter (p:
    (builtins.match "console=.*" p != null && builtins.match "console=tty[0-9]+" p == null)
    || builtins.match "(earlycon|earlyprintk|netconsole)(=.*)?" p != null) config.boot.kernelParams;

  # threat: T2 (cold boot: no RAM image on disk, freed pages zeroed), T1/T2 (lockdown: no /dev/mem,
  # no kprobes or BPF reading kernel memory, no unsigned kexec, no hibernation image).
  threatKernelParams = [
    "nohibernate"
    "init_on_free=1"
    "init_on_alloc=1"
    "page_alloc.shuffle=1"
    "slab_nomerge"
    "lockdown=${cfg.lockdown}"
  ];

  # threat: what a root shell on a captured drone, or a compromised service, would use next.
  hardeningSysctls = {
    "kernel.kptr_restrict" = 2;
    "kernel.dmesg_restrict" = 1;
    "kernel.unprivileged_bpf_disabled" = 1;
    "net.core.bpf_jit_harden" = 2;
    "kernel.kexec_load_disabled" = 1;
    "kernel.yama.ptrace_scope" = 2;
    "kernel.sysrq" = 0;
    "kernel.perf_event_paranoid" = 3;
    "dev.tty.ldisc_autoload" = 0;
    "fs.suid_dumpable" = 0;
    "fs.protected_symlinks" = 1;
    "fs.protected_hardlinks" = 1;
    "fs.protected_fifos" = 2;
    "fs.protected_regular" = 2;
    "kernel.core_pattern" = "|/bin/false";
  };

  secureBootGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

  # First-boot TPM2 enrollment (threat T1: unlock only while Secure Boot is on with the fleet's keys).
  # Runs on the drone once, after Secure Boot is in user mode, with the installer's one-time key file.
  tpmEnroll = pkgs.writeShellScript "ringil-tpm-enroll" ''
    set -eu
    sb=/sys/firmware/efi/efivars/SecureBoot-${secureBootGuid}
    sm=/sys/firmware/efi/efivars/SetupMode-${secureBootGuid}
    # byte 4 is the value (bytes 0-3 are the variable's attributes)
    byte() { od -An -tu1 -j4 -N1 "$1" | tr -d ' '; }
    if [ "$(byte "$sb")" != 1 ] || [ "$(byte "$sm")" != 0 ]; then
      echo "Secure Boot is not in user mode: not binding the disk to PCR 7 yet" >&2
      exit 1
    fi
    systemd-cryptenroll --wipe-slot=tpm2 --tpm2-device=auto --tpm2-pcrs=${lib.concatStringsSep "+" (map toString cfg.luks.tpm2Pcrs)} \
      ${lib.optionalString cfg.luks.tpm2Pin "--tpm2-with-pin=yes"} \
      --unlock-key-file=${cfg.luks.enrollKeyFile} ${cfg.luks.device}
    # the one-time key is on the encrypted root; drop it so only the TPM (and the fleet's
    # recovery passphrase, kept off the drone) can open the disk
    shred -u ${cfg.luks.enrollKeyFile}
  '';
in
{
  options.ringil.env = {
    mode = mkOption {
      type = types.enum [ "prod" "dev" ];
      default = "prod";
      description = ''
        prod: the seed's locked-down drone (no SSH, root locked, logs in RAM, lanzaboote Secure Boot,
        TPM2-bound LUKS, kernel hardening). dev: systemd-boot and key-only SSH, for bring-up.
      '';
    };

    lockdown = mkOption {
      type = types.enum [ "confidentiality" "integrity" ];
      default = "confidentiality";
      description = ''
        Kernel lockdown level (prod). confidentiality also stops reading kernel memory (keys of the
        LUKS volume) from user space; integrity only stops modifying the running kernel.
      '';
    };

    hostId = mkOption {
      type = types.nullOr (types.strMatching "[0-9a-f]{8}");
      default = null;
      description = "networking.hostId (8 hex digits), required by ZFS; one per drone or per image.";
    };

    extraKernelParams = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        Kernel parameters added in prod, after the seed's and the hardening ones. Other modules' parameters
        are kept (jetpack-nixos's nvidia.rm_firmware_active=all, NixOS's lsm=…); only a serial or early
        console is refused, by an assertion: the board module turns its console off (jetson.nix sets
        hardware.nvidia-jetpack.console.enable = false).
      '';
    };

    luks = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Unlock the LUKS2 root with the TPM2 (disko.nix creates it).";
      };
      name = mkOption {
        type = types.str;
        default = "crypted";
        description = "The LUKS mapping name (boot.initrd.luks.devices.<name>), as in disko.nix.";
      };
      device = mkOption {
        type = types.str;
        default = "/dev/disk/by-partlabel/disk-main-luks";
        description = "The LUKS2 partition, for systemd-cryptenroll (disko names it disk-<disk>-<partition>).";
      };
      tpm2Pcrs = mkOption {
        type = types.listOf types.int;
        default = [ 7 ];
        description = "PCRs the TPM2 key is sealed to. 7 = Secure Boot state and keys (PK, KEK, db, dbx).";
      };
      tpm = mkOption {
        type = types.enum [ "tis-crb" "optee-ftpm" ];
        default = "tis-crb";
        description = ''
          How stage 1 reaches the TPM that unseals the LUKS key. tis-crb: a discrete or firmware TPM behind
          the kernel's tpm_tis/tpm_crb drivers, through NixOS's boot.initrd.systemd.tpm2 (x86, most arm64).
          optee-ftpm: the firmware TPM in OP-TEE on Jetson Orin; jetson.nix selects it and brings up the
          TEE supplicant and tpm_ftpm_tee in stage 1 instead (docs/nixos.md "TPM on Orin").
        '';
      };
      tpm2Pin = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also require a PIN at boot (threat T3: a sniffed TPM bus then yields nothing usable alone).
          Needs someone at the keyboard at every boot, so off by default for unattended drones.
        '';
      };
      enrollKeyFile = mkOption {
        type = types.str;
        default = "/etc/secure/luks-enroll.key";
        description = ''
          One-time key file, placed by the installer on the encrypted root, used by
          ringil-tpm-enroll.service to add the TPM2 keyslot at first boot and then shredded.
        '';
      };
    };

    dev.authorizedKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "SSH public keys allowed to log in as root in dev mode (key-only, no passwords).";
    };
  };

  config = mkMerge [
    # Both modes.
    {
      assertions = [
        {
          # jetpack-nixos turns boot.initrd.systemd.tpm2 off (its kernel has no tpm_tis/tpm_crb); tis-crb
          # would turn it back on and the initrd would not build. jetson.nix selects optee-ftpm.
          assertion = !(cfg.luks.enable && cfg.luks.tpm == "tis-crb" && (config.hardware.nvidia-jetpack.enable or false));
          message = "ringil.env.luks.tpm = \"tis-crb\" on a Jetson: import the flake's nixosModules.ringil-jetson (it unlocks through the OP-TEE fTPM).";
        }
      ];
      boot.loader.efi.canTouchEfiVariables = true;                        # seed
      boot.initrd.systemd.enable = true;                                  # threat: TPM2 unlock in stage 1
      networking.hostId = mkIf (cfg.hostId != null) cfg.hostId;           # ZFS
      boot.initrd.luks.devices = mkIf cfg.luks.enable {
        ${cfg.luks.name}.crypttabExtraOpts = [ "tpm2-device=auto" ];      # threat: T1
      };
      # The TPM in stage 1 (threat T1): NixOS's TIS/CRB support, stated rather than left to a default that
      # a board module may change; an fTPM board (jetson.nix) brings its own driver path instead.
      boot.initrd.systemd.tpm2.enable = mkIf (cfg.luks.enable && cfg.luks.tpm == "tis-crb") true;
      security.tpm2.enable = mkIf cfg.luks.enable true;
    }

    (mkIf isProd {
      assertions = [
        {
          assertion = serialConsoles == [ ];
          message = "ringil.env.mode = \"prod\": boot.kernelParams opens a serial or early console (${toString serialConsoles}); the seed allows console=tty0 only. Turn the board module's console off (jetson.nix does for jetpack-nixos).";
        }
      ];

      # --- seed: environment ---
      users.allowNoPasswordLogin = mkForce true;
      services.openssh.enable = false;
      users.users.root.hashedPassword = mkForce "!";
      services.journald.extraConfig = ''
        Storage=volatile
        RuntimeMaxUse=50M
      '';
      # Added to, not forced: what other modules need stays (jetpack-nixos's nvidia.rm_firmware_active=all).
      boot.kernelParams = seedKernelParams ++ threatKernelParams ++ cfg.extraKernelParams;
      systemd.services."serial-getty@ttyS0".enable = false;
      systemd.services."serial-getty@ttyTCU0".enable = false;             # the Jetson's combined UART
      services.udisks2.enable = false;
      services.xserver.enable = false;
      documentation.enable = false;
      documentation.nixos.enable = false;

      # --- seed: boot ---
      boot.loader.timeout = 0;
      boot.loader.systemd-boot.editor = false;
      boot.initrd.systemd.emergencyAccess = false;
      boot.lanzaboote = {
        enable = true;
        # Keys must exist before the first build on the drone (`ringil keys create`, docs/nixos.md).
        pkiBundle = "/etc/secure/keys";
        settings.auto-firmware = false;                                   # threat: T1, no "reboot into firmware" entry
      };
      boot.loader.systemd-boot.enable = mkForce false;                    # lanzaboote replaces it

      # --- threat: nothing to recover from a captured drone (T2), no way in (T1) ---
      swapDevices = mkForce [ ];
      boot.consoleLogLevel = 0;
      boot.kernel.sysctl = builtins.mapAttrs (_: mkForce) hardeningSysctls;
      security.protectKernelImage = true;
      systemd.sleep.settings.Sleep = {
        AllowSuspend = "no";
        AllowHibernation = "no";
        AllowHybridSleep = "no";
        AllowSuspendThenHibernate = "no";
      };
      systemd.targets.sleep.enable = false;
      systemd.targets.suspend.enable = false;
      systemd.targets.hibernate.enable = false;
      systemd.targets.hybrid-sleep.enable = false;
      systemd.targets.suspend-then-hibernate.enable = false;
      systemd.coredump.enable = false;
      systemd.coredump.settings.Coredump = {
        Storage = "none";
        ProcessSizeMax = "0";
      };
      security.pam.loginLimits = [ { domain = "*"; item = "core"; type = "hard"; value = "0"; } ];
      users.mutableUsers = false;
      users.users.root.shell = mkForce "${pkgs.shadow}/bin/nologin";
      systemd.enableEmergencyMode = false;
      systemd.services."getty@tty1".enable = false;
      systemd.services."autovt@".enable = false;
      systemd.services.debug-shell.enable = false;
      boot.tmp.useTmpfs = true;
      environment.defaultPackages = mkForce [ ];

      systemd.services.ringil-tpm-enroll = mkIf cfg.luks.enable {
        description = "Bind the LUKS2 root to the TPM2 (PCR 7) once Secure Boot is in user mode";
        wantedBy = [ "multi-user.target" ];
        wants = [ "tpm2.target" ];
        after = [ "local-fs.target" "tpm2.target" ];
        path = [ pkgs.coreutils pkgs.systemd ];
        unitConfig.ConditionPathExists = cfg.luks.enrollKeyFile;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = "${tpmEnroll}";
          PrivateNetwork = true;
          NoNewPrivileges = true;
        };
      };
    })

    (mkIf (!isProd) {
      boot.loader.systemd-boot.enable = mkDefault true;
      services.openssh = {
        enable = true;
        settings = {
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          PermitRootLogin = "prohibit-password";
        };
      };
      users.users.root.openssh.authorizedKeys.keys = cfg.dev.authorizedKeys;
      assertions = [
        {
          assertion = cfg.dev.authorizedKeys != [ ];
          message = "ringil.env.mode = \"dev\" needs ringil.env.dev.authorizedKeys (SSH is key-only).";
        }
      ];
    })
  ];
}
