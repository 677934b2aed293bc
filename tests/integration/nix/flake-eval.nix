# flake-eval.nix: nix/flake.nix's shape: its pinned inputs, and its outputs called with inputs made from the upstream sources.
# Usage: nix-instantiate --eval --strict --json flake-eval.nix --argstr upstream DIR
{ upstream }:

let
  up = /. + upstream;
  lib = import (up + "/nixpkgs-lib-master/lib");
  pkgs = import ./pkgs.nix { inherit lib; };
  f = import ./flake-inputs.nix { inherit lib up pkgs; };
  self = f.outputs;
  name = m:
    if builtins.isPath m then baseNameOf m
    else if builtins.isAttrs m && m ? _file then baseNameOf (dirOf m._file) + "/" + baseNameOf m._file
    else if builtins.isFunction m then "function"
    else "attrs";
  importsOf = m: map name ((m { inherit lib pkgs; }).imports or [ ]);
in
{
  inputs = builtins.mapAttrs (_: i: i.url) f.declared.inputs;
  follows = builtins.mapAttrs (_: i: i.inputs.nixpkgs.follows or null) f.declared.inputs;
  packages = builtins.mapAttrs (_: ps: builtins.attrNames ps) self.packages;
  packageSrcIsPath = self.packages.x86_64-linux.ringil.srcIsPath;
  modules = builtins.mapAttrs (_: importsOf) self.nixosModules;
  ringildPackageDefault = (self.nixosModules.ringild { inherit lib pkgs; }).services.ringild.package.content.name;
  drone = {
    inherit (self.nixosConfigurations.orin-drone) system;
    modules = map (m: if builtins.isPath m then baseNameOf m else "function") self.nixosConfigurations.orin-drone.modules;
  };
}
