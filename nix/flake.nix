# flake.nix: ringil's NixOS side: the package, the prod/dev environment, the disk layout, the agent, and an Orin drone.
{
  description = "ringil: hardened NixOS drones with Secure Boot, signed updates and fleet management";

  # Pinned to revisions that evaluate together (tests/integration/test_nix.py evaluates the modules against
  # these very sources; docs/nixos.md "Pins"). lanzaboote v1.1.0 types pkiBundle as lib.types.externalPath,
  # which nixpkgs has from 25.11 on: 25.05 cannot evaluate it. jetpack-nixos master targets nixos-26.05,
  # and its flake.lock pins the nixpkgs revision below, so that is the nixpkgs of the combination.
  # nixos-26.05 needs Nix >= 2.18 on the machine that builds (nixpkgs lib/minfeatures.nix).
  inputs = {
    # nixos-26.05, 2026-06-27 (the revision jetpack-nixos@4d857d6's flake.lock pins)
    nixpkgs.url = "github:NixOS/nixpkgs/714a5f8c4ead6b31148d829288440ed033ccc041";
    lanzaboote = {
      # tag v1.1.0 = 7c9a54a7f87b4539ddbd8bda09a8a5f5f9361aa9
      url = "github:nix-community/lanzaboote/v1.1.0";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    disko = {
      # tag "latest" of 2026-01-20 (the tag moves; the revision does not)
      url = "github:nix-community/disko/de5708739256238fb912c62f03988815db89ec9a";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    jetpack-nixos = {
      # master of 2026-07-30 (JetPack 6/7, OP-TEE fTPM in stage 1)
      url = "github:anduril/jetpack-nixos/4d857d6da48c420da39964b6fb7ba23a958abad3";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, lanzaboote, disko, jetpack-nixos, ... }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        ringil = pkgs.callPackage ./package.nix { src = ../.; };
        default = ringil;
      });

      nixosModules = {
        # prod/dev environment; brings lanzaboote's options (prod enables it).
        ringil-env = { ... }: {
          imports = [ lanzaboote.nixosModules.lanzaboote ./modules/env.nix ];
        };
        # GPT + ESP + LUKS2 + ZFS; brings disko's options.
        ringil-disko = { ... }: {
          imports = [ disko.nixosModules.disko ./modules/disko.nix ];
        };
        # services.ringild (and its WireGuard tunnel), with this flake's package as the default.
        ringild = { lib, pkgs, ... }: {
          imports = [ ./modules/ringild.nix ./modules/tunnel.nix ];
          services.ringild.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.ringil;
        };
        # NVIDIA Jetson: jetpack-nixos, prod's console removal and the OP-TEE fTPM in stage 1.
        ringil-jetson = { ... }: {
          imports = [ jetpack-nixos.nixosModules.default ./modules/jetson.nix ];
        };
        default = { ... }: {
          imports = [ self.nixosModules.ringil-env self.nixosModules.ringil-disko self.nixosModules.ringild ];
        };
      };

      # Example: a Jetson AGX Orin drone (devkit carrier), prod mode, A/B slots updated by the fleet through
      # the WireGuard tunnel.
      # Build the installer-side disk script and system with:
      #   nix build ./nix#nixosConfigurations.orin-drone.config.system.build.toplevel
      nixosConfigurations.orin-drone = nixpkgs.lib.nixosSystem {
        system = "aarch64-linux";
        modules = [
          self.nixosModules.ringil-jetson
          self.nixosModules.default
          ./hosts/orin-drone.nix
        ];
      };
    };
}
