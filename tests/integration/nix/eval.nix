# eval.nix: evaluates ringil's NixOS modules with the real nixpkgs lib and the real lanzaboote, disko and
# jetpack-nixos modules from ../shared/nix-upstream; test_nix.py reads the JSON it returns.
#
# Usage: nix-instantiate --eval --strict --json eval.nix --argstr upstream DIR
#          [--argstr lib master|2505] [--argstr modules env,disko,ringild,tunnel,jetson]
#          [--argstr settings JSON] [--argstr host orin-drone] [--argstr paths JSON] [--argstr defined env]
#          [--argstr flakeHost orin-drone] [--argstr overrides JSON] [--argstr system x86_64-linux]
# Returns: failed assertion messages, warnings, the values at `paths`, ringil's /etc files, the settings
# one module defines (`defined`) and `unevaluated`: every option whose value does not evaluate.
# What is real and what is declared by hand: nixos-core-options.nix (NixOS's own options) and pkgs.nix
# (named stand-in packages). Nothing is built.
{
  upstream,
  lib ? "master",
  modules ? "env",
  settings ? "{}",
  host ? "",
  paths ? "[]",
  defined ? "",
  system ? "aarch64-linux",
  # "orin-drone": evaluate nix/flake.nix's nixosConfigurations.orin-drone instead, its module list exactly as
  # the flake wires it, with the inputs' modules from the upstream sources
  flakeHost ? "",
  # {"env": "/tmp/…/env.nix", …}: evaluate another copy of a module (the mutation tests)
  overrides ? "{}",
}:

let
  up = /. + upstream;
  libDir = up + "/nixpkgs-lib-${if lib == "2505" then "2505" else "master"}/lib";
  l = import libDir;
  pkgs = import ./pkgs.nix { lib = l; inherit system; };
  repo = ../../../nix;

  ringilModules = {
    env = repo + "/modules/env.nix";
    disko = repo + "/modules/disko.nix";
    ringild = repo + "/modules/ringild.nix";
    tunnel = repo + "/modules/tunnel.nix";
    jetson = repo + "/modules/jetson.nix";
  };
  moduleFile = n: let o = builtins.fromJSON overrides; in if o ? ${n} then /. + o.${n} else ringilModules.${n};
  names = builtins.filter (n: builtins.isString n && n != "") (builtins.split "," modules);

  # The flake's inputs, as its nixosModules import them.
  upstreamModules = [
    flake.inputs.lanzaboote.nixosModules.lanzaboote
    flake.inputs.disko.nixosModules.disko
    flake.inputs.jetpack-nixos.nixosModules.default
  ];

  # nixpkgs' nixos/lib/utils.nix: the one helper a module here calls
  utils.escapeSystemdPath =
    s: l.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (l.removePrefix "/" s);

  userSettings = builtins.fromJSON settings;
  hostModule = l.optional (host != "") (repo + "/hosts/${host}.nix");

  flake = import ./flake-inputs.nix { lib = l; inherit up pkgs; };

  ev = l.evalModules {
    class = "nixos";
    specialArgs = { modulesPath = "/nonexistent/nixpkgs/nixos/modules"; };
    modules =
      [
        ./nixos-core-options.nix
        { _module.args = { inherit pkgs utils; }; }
      ]
      ++ (if flakeHost != "" then flake.outputs.nixosConfigurations.${flakeHost}.modules
          else upstreamModules ++ map moduleFile names ++ hostModule)
      ++ [ { config = userSettings; } ];
  };
  cfg = ev.config;

  # The definitions one ringil module makes, with the module system's wrappers resolved against the final
  # configuration (mkIf by its condition, mkMerge merged, priorities and ordering unwrapped): the paths of
  # its leaves, each with the module's own value there (`own`) and the final value of the whole system.
  absent = { __absent = true; };
  isAbsent = v: builtins.isAttrs v && v ? __absent;
  isTree = v: builtins.isAttrs v && !(v ? _type) && !(v ? outPath);
  mergeTrees =
    ts:
    let
      trees = builtins.filter (t: !isAbsent t) ts;
    in
    if trees == [ ] then absent
    else if builtins.all isTree trees then l.zipAttrsWith (_: vs: mergeTrees vs) trees
    else builtins.head trees;
  unwrap =
    v:
    if builtins.isAttrs v && v ? _type then
      (if v._type == "if" then (if v.condition then unwrap v.content else absent)
       else if v._type == "merge" then mergeTrees (map unwrap v.contents)
       else if v._type == "override" || v._type == "order" then unwrap v.content
       else v)
    else if isTree v then
      let
        kept = l.filterAttrs (_: x: !isAbsent x) (builtins.mapAttrs (_: unwrap) v);
      in
      if kept == { } && v != { } then absent else kept
    else v;
  leaves =
    prefix: t:
    if isTree t && t != { } then l.concatLists (l.mapAttrsToList (n: leaves (prefix ++ [ n ])) t)
    else [ { path = prefix; own = t; } ];
  definitionsOf =
    name:
    let
      m = import (moduleFile name);
      r = m { config = cfg; options = ev.options; lib = l; inherit pkgs utils; modulesPath = ""; };
      tree = unwrap (r.config or (builtins.removeAttrs r [ "imports" "options" ]));
    in
    map (x: x // { value = l.attrByPath x.path null cfg; })
      (builtins.filter (x: !builtins.elem (builtins.head x.path) [ "assertions" "warnings" ]) (if isAbsent tree then [ ] else leaves [ ] tree));

  # Every option something defines (its own default aside), forced: plain data 8 levels deep; packages,
  # functions and internal (_…) attributes are not looked into. Conflicting definitions, type errors and failed `throw`s anywhere
  # in the system surface here. Build products are left alone: they are derivations of nixpkgs, which
  # this evaluation does not have; so are options only their default sets (upstream's own business).
  buildOutputs = [ [ "system" "build" ] [ "virtualisation" "vmVariantWithDisko" ]
                   [ "hardware" "nvidia-jetpack" "flasherPkgs" ] [ "hardware" "nvidia-jetpack" "devicePkgs" ]
                   [ "hardware" "nvidia-jetpack" "flashScript" ] ];
  checkedOptions = builtins.filter (o: !(builtins.any (p: l.lists.hasPrefix p o.loc) buildOutputs) && builtins.head o.loc != "_module")
    (l.collect l.isOption ev.options);
  # (attributes named _…: module-system and disko internals, e.g. disko's generated scripts)
  force =
    depth: v:
    if depth == 0 || builtins.isFunction v then true
    else if builtins.isAttrs v then
      (v ? outPath && v.type or "" == "derivation")
      || builtins.all (n: l.hasPrefix "_" n || force (depth - 1) v.${n}) (builtins.attrNames v)
    else if builtins.isList v then builtins.all (force (depth - 1)) v
    else builtins.seq v true;
  # values as JSON can carry them: packages as their path, functions named, internals left out
  jsonSafe =
    v:
    if builtins.isFunction v then "<function>"
    else if builtins.isAttrs v then
      (if v ? outPath then toString v else builtins.mapAttrs (_: jsonSafe) (l.filterAttrs (n: _: !l.hasPrefix "_" n) v))
    else if builtins.isList v then map jsonSafe v
    else v;
  failsToEvaluate = o: !(builtins.tryEval (o.highestPrio >= 1500 || force 8 o.value)).success;

  tryText = e: let t = builtins.tryEval (if e.text != null then e.text else e.source.text or null); in if t.success then t.value else null;
in
{
  assertions = map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);
  warnings = cfg.warnings;
  values = map (p: jsonSafe (l.attrByPath p null cfg)) (builtins.fromJSON paths);
  etc = builtins.mapAttrs (_: tryText) (l.filterAttrs (n: _: l.hasPrefix "ringil" n) cfg.environment.etc);
  defined = if defined == "" then [ ] else definitionsOf defined;
  libVersion = l.version;
  # every option's final value, forced: conflicting definitions and type errors anywhere surface here
  unevaluated = map (o: l.showOption o.loc) (builtins.filter failsToEvaluate checkedOptions);
}
