# eval.nix: evaluates one ringil NixOS module with the stub lib; test_nix.py reads the JSON result.
# Usage: nix-instantiate --eval --strict --json eval.nix --argstr module env --argstr settings '{...}'
{ module, settings ? "{}" }:

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
  ev = lib.evalModule {
    module = import modules.${module};
    settings = builtins.fromJSON settings;
    inherit pkgs;
  };
in
{
  inherit (ev) result;
  config = ev.config;
  # text of the generated /etc files (the JSON of a stub package is only its path)
  etc = builtins.mapAttrs (_: e: e.source.text or e.text or null) (ev.result.environment.etc or { });
}
