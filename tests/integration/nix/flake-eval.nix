# flake-eval.nix: calls nix/flake.nix's outputs with stub inputs (no nixpkgs, no network) and reports its shape.
let
  flake = import ../../../nix/flake.nix;
  stubLib = import ./stub-lib.nix;
  pkgsFor = system: {
    inherit system;
    stdenv.hostPlatform.system = system;
    callPackage = fn: args: { outPath = "/nix/store/00000000000000000000000000000000-ringil"; inherit system; fnIsPath = builtins.isPath fn; srcArg = args.src or null; };
  };
  nixpkgs = {
    lib = {
      genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      nixosSystem = args: args;
    };
    legacyPackages = {
      x86_64-linux = pkgsFor "x86_64-linux";
      aarch64-linux = pkgsFor "aarch64-linux";
    };
  };
  stubModule = name: { _stub = name; };
  self = flake.outputs inputs;
  inputs = {
    inherit self nixpkgs;
    lanzaboote.nixosModules.lanzaboote = stubModule "lanzaboote";
    disko.nixosModules.disko = stubModule "disko";
    jetpack-nixos.nixosModules.default = stubModule "jetpack";
  };
  importsOf = m: map (i: if builtins.isPath i then baseNameOf i else i._stub or "module") ((m { lib = stubLib; pkgs = pkgsFor "aarch64-linux"; }).imports or [ ]);
in
{
  inputs = builtins.mapAttrs (_: i: i.url) flake.inputs;
  follows = builtins.mapAttrs (_: i: i.inputs.nixpkgs.follows or null) flake.inputs;
  packages = builtins.mapAttrs (_: ps: builtins.attrNames ps) self.packages;
  packageSrcIsPath = builtins.isPath self.packages.x86_64-linux.ringil.srcArg;
  modules = builtins.mapAttrs (_: importsOf) self.nixosModules;
  ringildPackageDefault = ((self.nixosModules.ringild { lib = stubLib; pkgs = pkgsFor "aarch64-linux"; }).services.ringild.package.content.system);
  drone = {
    inherit (self.nixosConfigurations.orin-drone) system;
    modules = map (m: if builtins.isPath m then baseNameOf m else if builtins.isAttrs m then m._stub or "attrs" else "function") self.nixosConfigurations.orin-drone.modules;
  };
}
