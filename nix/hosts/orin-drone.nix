# orin-drone.nix: example host: a Jetson AGX Orin drone in prod mode, NVMe root, fleet agent in slots mode behind the WireGuard tunnel.
{ config, lib, pkgs, ... }:

{
  # jetpack-nixos (JetPack 6 / L4T r36 for Orin). nix/modules/jetson.nix adds the OP-TEE fTPM in stage 1
  # (LUKS unlock) and turns the serial console off in prod.
  hardware.nvidia-jetpack = {
    enable = true;
    som = "orin-agx";
    carrierBoard = "devkit";
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
    # The fleet server's address inside the tunnel (its TLS certificate names 10.77.0.1).
    serverUrl = "https://10.77.0.1:8443";
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
    tunnel = {
      enable = true;
      addresses = [ "10.77.0.12/32" ];
      server = {
        publicKey = "hS4B3Rz0mC2ka+6k1Q4E0nOXU9zLkqgIHNpm4B0ZxWM=";
        endpoint = "fleet.example.org:51820";
        addresses = [ "10.77.0.1/32" ];
      };
    };
  };

  system.stateVersion = "26.05";
}
