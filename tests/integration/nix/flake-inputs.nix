# flake-inputs.nix: nix/flake.nix's inputs made from the upstream sources (no network, no nixpkgs), and its outputs called with them.
# lanzaboote, disko and jetpack-nixos are their real module files, imported the way each project's own
# flake exports them; nixpkgs is the real lib (nixosSystem returns its arguments, to be evaluated by
# eval.nix) and the stand-in packages of pkgs.nix.
{ lib, up, pkgs }:

let
  nixpkgs = {
    lib = lib // { nixosSystem = args: args; };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: import ./pkgs.nix { inherit lib system; });
  };
  inputs = {
    inherit self nixpkgs;
    # lanzaboote's flake: imports nix/modules/lanzaboote.nix and sets its own lzbt package
    lanzaboote.nixosModules.lanzaboote = {
      _file = up + "/lanzaboote/flake.nix";
      imports = [ (up + "/lanzaboote/nix/modules/lanzaboote.nix") ];
      boot.lanzaboote.package = lib.mkDefault pkgs.lzbt;
    };
    # disko's flake: nixosModules.disko = ./module.nix
    disko.nixosModules.disko = up + "/disko/module.nix";
    # jetpack-nixos's flake: import ./modules/default.nix self.overlays.default (the overlay's packages are
    # what pkgs.nix stands in for)
    jetpack-nixos.nixosModules.default = {
      _file = up + "/jetpack-nixos/modules/default.nix";
      imports = [ (import (up + "/jetpack-nixos/modules/default.nix") (final: prev: { })) ];
    };
  };
  flake = import ../../../nix/flake.nix;
  self = flake.outputs inputs // { inherit (flake) inputs; };
in
{
  inherit inputs;
  outputs = self;
  declared = flake;
}
