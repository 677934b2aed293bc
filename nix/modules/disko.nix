# disko.nix: the drone's disk: GPT, unencrypted ESP, LUKS2 over the rest, ZFS pool with root and /nix inside it.
#
# Layout (disk "main"):
#   p1 ESP   vfat, umask=0077, mounted at /boot   (signed lanzaboote stubs; kernels/initrds hash-checked)
#   p2 luks  LUKS2 "crypted" (aes-xts-plain64, 512-bit key, argon2id) → ZFS pool "zroot"
#              zroot/root → /      zroot/root/nix → /nix      zroot/NAME-{a,b}: A/B slot zvols
# The TPM2 keyslot cannot be made here (disko has no TPM option): env.nix's ringil-tpm-enroll.service
# adds it at first boot, bound to PCR 7; docs/nixos.md gives the manual systemd-cryptenroll step.
# This module does not import disko itself (the flake's nixosModules.ringil-disko does).
{ config, lib, ... }:

let
  inherit (lib) mkOption mkIf types;
  cfg = config.ringil.disko;
  device =
    if cfg.device != null then cfg.device
    else if cfg.target == "nvme" then "/dev/nvme0n1"
    else "/dev/mmcblk0";
  som = config.hardware.nvidia-jetpack.som or null;
  isXavier = som != null && builtins.match "xavier.*" som != null;
  slotDatasets = builtins.listToAttrs (builtins.concatMap (name: map (ab: {
    name = "${name}-${ab}";
    value = { type = "zfs_volume"; size = cfg.slotVolumes.${name}; };
  }) [ "a" "b" ]) (builtins.attrNames cfg.slotVolumes));
in
{
  options.ringil.disko = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = "Lay the drone's disk out with disko (destroys the target disk at install).";
    };
    target = mkOption {
      type = types.enum [ "nvme" "emmc" ];
      default = "nvme";
      description = ''
        nvme: /dev/nvme0n1. emmc: /dev/mmcblk0. On a Jetson Xavier AGX the eMMC holds the boot
        firmware partitions and must not be wiped (jetpack-nixos: "install to an SSD"); this module
        refuses emmc there. On Orin the firmware lives in QSPI and the eMMC may be used.
      '';
    };
    device = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Explicit disk (a /dev/disk/by-id path is safer); overrides target.";
    };
    espSize = mkOption {
      type = types.str;
      default = "1G";
      description = "ESP size: lanzaboote keeps one stub plus kernel and initrd per generation.";
    };
    luksName = mkOption {
      type = types.str;
      default = "crypted";
      description = "LUKS mapping name; must equal ringil.env.luks.name.";
    };
    pool = mkOption {
      type = types.str;
      default = "zroot";
      description = "ZFS pool name.";
    };
    passwordFile = mkOption {
      type = types.str;
      default = "/tmp/secret.key";
      description = ''
        Initial LUKS passphrase file on the installer (never in the Nix store). It becomes the
        recovery passphrase; keep it off the drone.
      '';
    };
    slotVolumes = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { payload = "8G"; };
      description = ''
        A/B slot volumes for services.ringild in slots mode: NAME = size creates the zvols
        <pool>/NAME-a and <pool>/NAME-b (/dev/zvol/<pool>/NAME-{a,b}), inside the LUKS2 container.
      '';
    };
    allowDiscards = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Pass TRIM through dm-crypt. Keeps NVMe write performance and wear down; leaks which blocks are
        in use (not their content). Set false if that pattern matters more than flash wear.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(cfg.target == "emmc" && cfg.device == null && isXavier);
        message = "ringil.disko: on a Jetson Xavier the eMMC (mmcblk0) holds boot firmware; install to an NVMe SSD.";
      }
      {
        assertion = (config.networking.hostId or null) != null;
        message = "ringil.disko: ZFS needs networking.hostId (set ringil.env.hostId).";
      }
      {
        assertion = cfg.luksName == (config.ringil.env.luks.name or cfg.luksName);
        message = "ringil.disko.luksName must equal ringil.env.luks.name (the TPM2 crypttab options go there).";
      }
    ];
    warnings = lib.optional (cfg.target == "emmc")
      "ringil.disko: installing to mmcblk0; on Jetson Xavier this wipes boot firmware (jetpack-nixos: install to an SSD).";

    boot.supportedFilesystems = [ "zfs" ];
    # Never import a pool another host last used without being told to.
    boot.zfs.forceImportRoot = false;

    disko.devices = {
      disk.main = {
        type = "disk";
        inherit device;
        content = {
          type = "gpt";
          partitions = {
            ESP = {
              size = cfg.espSize;
              type = "EF00";
              content = {
                type = "filesystem";
                format = "vfat";
                mountpoint = "/boot";
                mountOptions = [ "umask=0077" ];
              };
            };
            luks = {
              size = "100%";
              content = {
                type = "luks";
                name = cfg.luksName;
                inherit (cfg) passwordFile;
                extraFormatArgs = [
                  "--type" "luks2"
                  "--cipher" "aes-xts-plain64"
                  "--key-size" "512"
                  "--pbkdf" "argon2id"
                ];
                # crypttabExtraOpts (tpm2-device=auto) come from env.nix, so they are set once.
                settings.allowDiscards = cfg.allowDiscards;
                content = {
                  type = "zfs";
                  inherit (cfg) pool;
                };
              };
            };
          };
        };
      };
      zpool.${cfg.pool} = {
        type = "zpool";
        rootFsOptions = {
          mountpoint = "none";
          compression = "zstd";
          acltype = "posixacl";
          xattr = "sa";
          # no ZFS-native encryption: the whole vdev is already inside LUKS2, which the TPM unlocks
        };
        options.ashift = "12";
        datasets = slotDatasets // {
          root = {
            type = "zfs_fs";
            mountpoint = "/";
          };
          "root/nix" = {
            type = "zfs_fs";
            mountpoint = "/nix";
            options.atime = "off";
          };
        };
      };
    };
  };
}
