# pkgs.nix: the package set the test evaluation passes as `pkgs`: named stand-in derivations, no nixpkgs.
#
# Packages are never built by these tests, only referred to: each is an attrset that the real lib's
# types.package accepts (type = "derivation", outPath under /nix/store) and whose name says what it
# stands for. The writers keep their text so the tests can read generated files (device.conf, scripts).
# pkgs.formats.* carry the value types of nixpkgs' pkgs/pkgs-lib/formats.nix (restated here), since
# lanzaboote's `settings` option is typed by them.
# `nvidia-jetpack` holds the facts jetpack-nixos's modules read from its overlay for the board under test:
# JetPack 6 (L4T r36.4.x) on Orin (t234).
{ lib, system ? "aarch64-linux", l4tVersion ? "36.4.4" }:

let
  drv = name: {
    type = "derivation";
    inherit name system;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
  };
  # a package of a binary: lib.getExe needs meta.mainProgram
  prog = name: drv name // { meta.mainProgram = name; };
  write = name: text: drv name // { inherit text; };

  # pkgs-lib/formats.nix: keyValue atoms, and the JSON/YAML value type
  atom = with lib.types; nullOr (oneOf [ bool int float str ]);
  jsonValue =
    with lib.types;
    let
      v = nullOr (oneOf [ bool int float str path (attrsOf v) (listOf v) ]) // { description = "JSON value"; };
    in
    v;
  format = type: {
    inherit type;
    generate = name: value: write name (builtins.toJSON value);
  };

  cmp = v: builtins.compareVersions l4tVersion v;
in
rec {
  inherit system;
  path = /nonexistent/nixpkgs;
  config = { cudaSupport = false; };
  overlays = [ ];
  stdenv.hostPlatform = {
    inherit system;
    isAarch64 = lib.hasPrefix "aarch64" system;
    isx86_64 = lib.hasPrefix "x86_64" system;
    isRiscV64 = false;
    isArmv7 = false;
  };
  buildPackages = pkgs;
  hostPlatform = stdenv.hostPlatform;
  buildPlatform = stdenv.hostPlatform;
  pkgs = { inherit stdenv gnused xmlstarlet dtc; };

  writeText = write;
  writeShellScript = write;
  writeShellScriptBin = name: text: prog name // { inherit text; };
  writeShellApplication = a: prog a.name // { text = a.text or ""; };
  writeTextFile = a: write a.name (a.text or "");
  runCommand = name: _env: text: write name text;
  symlinkJoin = a: drv a.name;
  substitute = a: drv "substituted";
  fetchurl = a: drv (baseNameOf a.url);
  # (records whether the flake passes its own source tree as a path)
  callPackage = _fn: args: prog "ringil" // { srcIsPath = builtins.isPath (args.src or null); };

  formats = {
    keyValue = { listsAsDuplicateKeys ? false, ... }: format (lib.types.attrsOf (
      if listsAsDuplicateKeys then lib.types.coercedTo atom lib.singleton (lib.types.listOf atom) else atom));
    json = { }: format jsonValue;
    yaml = { }: format jsonValue;
  };

  # what the evaluated modules name
  lzbt = prog "lzbt";
  sbctl = prog "sbctl";
  sbsigntool = prog "sbsigntool";
  shadow = drv "shadow";
  coreutils = prog "coreutils";
  gnugrep = prog "grep";
  kmod = prog "kmod";
  xxd = prog "xxd";
  bash = prog "bash";
  systemd = drv "systemd" // { withTpm2Tss = true; withBootloader = true; };
  tpm2-tss = drv "tpm2-tss";
  wireguard-tools = prog "wg";
  iproute2 = prog "ip";
  util-linux = drv "util-linux";
  linuxPackages = { inherit stdenv; kernel = drv "linux"; };
  addDriverRunpath.driverLink = "/run/opengl-driver";
  glibc = drv "glibc";
  gnused = prog "sed";
  xmlstarlet = prog "xmlstarlet";
  dtc = prog "dtc";
  linux-firmware = drv "linux-firmware" // { version = "20260601"; };

  nvidia-jetpack = {
    l4tAtLeast = v: cmp v >= 0;
    l4tOlder = v: cmp v < 0;
    l4tMajorMinorPatchVersion = l4tVersion;
    socType = "t234";
    kernelPackages = { extend = _: { inherit stdenv; kernel = drv "linux-jetson"; devicetree = drv "devicetree" // { src = drv "devicetree-src"; }; nvidia-oot-modules = drv "nvidia-oot"; }; };
    rtkernelPackages = nvidia-jetpack.kernelPackages;
    kernelPackagesOverlay = _: _: { };
    l4t-firmware = drv "l4t-firmware";
    l4t-tools = drv "l4t-tools";
    l4t-core = drv "l4t-core";
    l4t-init = drv "l4t-init";
    l4t-nvpmodel = drv "l4t-nvpmodel";
    l4t-nvfancontrol = drv "l4t-nvfancontrol";
    l4t-3d-core = drv "l4t-3d-core";
    l4t-camera = drv "l4t-camera";
    l4t-firmware-openrm = drv "l4t-firmware-openrm";
    containerDeps = drv "container-deps";
    driverDebs = { };
    gpuDriver = drv "gpu-driver";
    pkcs11Ta = drv "pkcs11-ta";
    otaUtils = prog "ota-utils";
    nvidia-smi = drv "nvidia-smi";
    opteeClient = drv "optee-client";
    ftpmHelperTa = drv "nvftpm-helper";
    uefiCapsuleUpdate = drv "uefi-capsule";
    bspSrc = drv "bsp-src";
    cudaPackages.vpi-firmware = drv "vpi-firmware";
    l4t-xusb-firmware = drv "l4t-xusb-firmware";
  };
}
