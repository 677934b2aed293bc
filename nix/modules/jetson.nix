# jetson.nix: ringil on an NVIDIA Jetson (jetpack-nixos): prod's console removal, and the LUKS TPM2 unlock through OP-TEE's firmware TPM.
#
# Needs jetpack-nixos's options (the flake's nixosModules.ringil-jetson imports both) and acts only when
# hardware.nvidia-jetpack.enable is set.
#
# Console (seed: no serial console). jetpack-nixos adds `console=tty0 console=ttyTCU0,115200` through
# hardware.nvidia-jetpack.console.enable; prod turns that switch off (env.nix adds console=tty0 itself)
# and keeps the rest of jetpack-nixos's parameters, nvidia.rm_firmware_active=all included.
#
# TPM (threat T1: the disk opens only on this drone, with Secure Boot on). Orin has no discrete TPM: its
# TPM 2.0 is a trusted application in OP-TEE (fTPM), reached through tee-supplicant and the
# tpm_ftpm_tee driver. NixOS's boot.initrd.systemd.tpm2 does two things: it adds the tpm-tis/tpm-crb
# drivers to the initrd, which JetPack 6's kernel does not build (jetpack-nixos turns it off for that
# reason; the initrd would not build), and it brings tpm2.target, systemd-tpm2-setup and the TSS
# libraries that systemd-cryptsetup loads for `tpm2-device=auto`. So it stays off here, and this module
# brings the second half itself, with jetpack-nixos's fTPM in stage 1 (optee.supplicant.earlyBoot) as
# the driver: ftpm-driver.service runs before tpm2.target, and the root's cryptsetup unit waits for
# tpm2.target. Without all of this the initrd finds no TPM, systemd-cryptsetup falls back to asking for
# the recovery passphrase, and an unattended drone never boots. docs/nixos.md "TPM on Orin".
{ config, lib, pkgs, utils, ... }:

let
  inherit (lib) mkIf mkMerge mkDefault;
  cfg = config.ringil.env;
  jp = config.hardware.nvidia-jetpack;
  optee = jp.firmware.optee;
  isProd = cfg.mode == "prod";
  ftpm = cfg.luks.enable && cfg.luks.tpm == "optee-ftpm";
  initrdSystemd = config.boot.initrd.systemd.package;
in
{
  config = mkIf jp.enable (mkMerge [
    {
      ringil.env.luks.tpm = mkDefault "optee-ftpm";
      assertions = [
        {
          assertion = !cfg.luks.enable || cfg.luks.tpm == "optee-ftpm";
          message = "ringil.env.luks.tpm = \"tis-crb\" on a Jetson: JetPack's kernel has no tpm_tis/tpm_crb; use \"optee-ftpm\".";
        }
      ];
    }

    (mkIf isProd {
      # seed: no serial console (ttyTCU0); env.nix keeps console=tty0.
      hardware.nvidia-jetpack.console.enable = false;
      # jetpack-nixos's UART getty is ttyTCU0; env.nix masks it (and ttyS0).
    })

    (mkIf ftpm {
      assertions = [
        {
          assertion = lib.versionAtLeast jp.majorVersion "6";
          message = "ringil: the LUKS unlock through the OP-TEE fTPM needs JetPack 6 or later (L4T r36; r35 has no fTPM sources).";
        }
      ];
      # The fTPM, and the TEE supplicant plus tpm_ftpm_tee in stage 1 (jetpack-nixos's optee.nix).
      hardware.nvidia-jetpack.firmware.optee = {
        ftpm.enable = true;
        supplicant.earlyBoot.enable = true;
        # an EPS injected from a file is a TPM backdoor for testing only (optee.nix)
        ftpm.unsecureInjectEPS.enable = false;
      };
      # Deliberately off: see the header. What it would bring besides the missing drivers comes next.
      boot.initrd.systemd.tpm2.enable = false;
      boot.initrd.systemd.additionalUpstreamUnits = [ "tpm2.target" "systemd-tpm2-setup-early.service" ];
      boot.initrd.systemd.storePaths = [
        pkgs.tpm2-tss
        "${initrdSystemd}/lib/systemd/systemd-tpm2-setup"
        "${initrdSystemd}/lib/systemd/system-generators/systemd-tpm2-generator"
      ];
      # The root's cryptsetup unit pulls tpm2.target in and waits for it: systemd-tpm2-generator would
      # only do so when the firmware announces a TPM, which r36's UEFI does not, and jetpack-nixos's
      # ftpm-driver.service (wanted by tpm2.target, ordered before it) is what makes /dev/tpmrm0.
      boot.initrd.systemd.services."systemd-cryptsetup@${utils.escapeSystemdPath cfg.luks.name}" = {
        overrideStrategy = "asDropin";
        wants = [ "tpm2.target" ];
        after = [ "tpm2.target" ];
      };
    })
  ]);
}
