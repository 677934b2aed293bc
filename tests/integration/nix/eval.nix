# eval.nix: evaluates one ringil NixOS module with the stub lib; test_nix.py reads the JSON result.
# Usage: nix-instantiate --eval --strict --json eval.nix --argstr module env[,disko,...] --argstr settings '{...}'
#        (--argstr host orin-drone: evaluate nix/hosts/orin-drone.nix as the settings)
{ module, settings ? "{}", host ? "" }:

let
  lib = import ./stub-lib.nix;
  stub = name: { outPath = "/nix/store/00000000000000000000000000000000-${name}"; inherit name; };
  pkgs = {
    writeText = name: text: stub name // { inherit text; };
    writeShellScript = name: text: stub name // { inherit text; };
    callPackage = _fn: _args: stub "ringil";
    shadow = stub "shadow";
    coreutils = stub "coreutils";
    systemd = stub "systemd";
  };
  modules = {
    env = ../../../nix/modules/env.nix;
    disko = ../../../nix/modules/disko.nix;
    ringild = ../../../nix/modules/ringild.nix;
  };
  names = builtins.filter builtins.isString (builtins.split "," module);
  hostSettings = if host == "" then { } else import (../../../nix/hosts + "/${host}.nix") { config = { }; inherit lib pkgs; };
  ev = lib.evalModules {
    modules = map (n: import modules.${n}) names;
    settings = lib.mkMerge [ hostSettings (builtins.fromJSON settings) ];
    inherit pkgs;
  };
in
{
  inherit (ev) result system;
  config = ev.config;
  # text of the generated /etc files (the JSON of a stub package is only its path)
  etc = builtins.mapAttrs (_: e: e.source.text or e.text or null) (ev.result.environment.etc or { });
}
