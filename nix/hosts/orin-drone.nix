# orin-drone.nix: example host: a Jetson AGX Orin drone in prod mode, NVMe root, fleet agent in slots mode.
{ config, lib, pkgs, ... }:

{
  # jetpack-nixos (r36+/JetPack 6 for the OP-TEE fTPM). Option names follow anduril/jetpack-nixos;
  # check them against the revision in flake.lock.
  hardware.nvidia-jetpack = {
    enable = true;
    som = "orin-agx";
    carrierBoard = "devkit";
    # The fTPM that unseals the LUKS key; the supplicant must run in the initrd for stage-1 unlock.
    firmware.optee.ftpm.enable = true;
    firmware.optee.supplicant.earlyBoot.enable = true;
  };

  networking.hostName = "drone";
  ringil.env = {
    mode = "prod";
    hostId = "8425e349";
  };
  ringil.disko = {
    target = "nvme";
    slotVolumes.payload = "8G";
  };

  services.ringild = {
    enable = true;
    serverUrl = "https://fleet.example.org:8443";
    caFile = "/etc/secure/ringil/fleet-ca.pem";
    compatible = "orin-agx-drone";
    mode = "slots";
    slots.payload = {
      a = "/dev/zvol/zroot/payload-a";
      b = "/dev/zvol/zroot/payload-b";
    };
    healthCommands = [
      "systemctl is-active --quiet mavlink-router.service"
    ];
  };

  system.stateVersion = "25.05";
}
