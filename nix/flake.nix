# flake.nix: ringil's NixOS side: the package, the prod/dev environment, the disk layout, the agent, and an Orin drone.
{
  description = "ringil: hardened NixOS drones with Secure Boot, signed updates and fleet management";

  inputs = {
    # Pinned by URL (branch or tag); flake.lock records the exact revisions on first `nix flake lock`.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    lanzaboote = {
      url = "github:nix-community/lanzaboote/v1.1.0";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    disko = {
      url = "github:nix-community/disko/latest";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    jetpack-nixos = {
      url = "github:anduril/jetpack-nixos/master";
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
        # services.ringild, with this flake's package as the default.
        ringild = { lib, pkgs, ... }: {
          imports = [ ./modules/ringild.nix ];
          services.ringild.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.ringil;
        };
        default = { ... }: {
          imports = [ self.nixosModules.ringil-env self.nixosModules.ringil-disko self.nixosModules.ringild ];
        };
      };

      # Example: a Jetson AGX Orin drone (devkit carrier), prod mode, A/B slots updated by the fleet.
      # Build the installer-side disk script and system with:
      #   nix build ./nix#nixosConfigurations.orin-drone.config.system.build.toplevel
      nixosConfigurations.orin-drone = nixpkgs.lib.nixosSystem {
        system = "aarch64-linux";
        modules = [
          jetpack-nixos.nixosModules.default
          self.nixosModules.default
          ./hosts/orin-drone.nix
        ];
      };
    };
}
