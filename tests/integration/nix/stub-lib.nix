# stub-lib.nix: a minimal nixpkgs `lib` and module evaluator, so the ringil modules evaluate without nixpkgs.
#
# It implements only what nix/modules/*.nix use. Definitions keep the module system's meaning where
# the tests depend on it: mkIf false removes a definition, mkMerge merges, priorities (mkForce 50,
# plain 100, mkDefault 1000, option default 1500) pick the winner, equal-priority lists concatenate,
# and two different scalars at the same priority are a conflict (an error, as in NixOS).
let
  b = builtins;

  uniq = l: b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ] l;
  isWrapped = v: b.isAttrs v && v ? _type;
  isTree = v: b.isAttrs v && !(v ? _type) && !(v ? outPath);

  lib = rec {
    # --- definitions ---
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkForce = mkOverride 50;
    mkDefault = mkOverride 1000;
    mkOptionDefault = mkOverride 1500;
    mkBefore = x: x;
    mkAfter = x: x;

    # --- options ---
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable ${name}."; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };

    types = rec {
      mk = name: check: { inherit name check; };
      str = mk "str" b.isString;
      lines = str;
      bool = mk "bool" b.isBool;
      int = mk "int" b.isInt;
      path = mk "path" (v: b.isPath v || b.isString v);
      package = mk "package" (v: b.isAttrs v && v ? outPath);
      anything = mk "anything" (_: true);
      enum = values: (mk "enum" (v: b.elem v values)) // { inherit values; };
      strMatching = re: (mk "strMatching" (v: b.isString v && b.match re v != null)) // { inherit re; };
      nullOr = t: (mk "nullOr" (v: v == null || t.check v)) // { elemType = t; };
      listOf = t: (mk "listOf" (v: b.isList v && b.all t.check v)) // { elemType = t; };
      attrsOf = t: (mk "attrsOf" (v: b.isAttrs v && b.all (n: t.check v.${n}) (b.attrNames v))) // { elemType = t; };
      submodule = m: (mk "submodule" (v: b.isAttrs v && checkOptions [ ] m.options v)) // { module = m; };
      ints = {
        positive = mk "positive int" (v: b.isInt v && v > 0);
        between = lo: hi: mk "int between" (v: b.isInt v && v >= lo && v <= hi);
      };
    };

    # --- the few list/string/attrs helpers the modules use ---
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: l: if c then l else [ ];
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: a: if c then a else { };
    concatStringsSep = b.concatStringsSep;
    concatMapStringsSep = sep: f: l: b.concatStringsSep sep (map f l);
    concatLists = b.concatLists;
    mapAttrsToList = f: s: map (n: f n s.${n}) (b.attrNames s);
    hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
    hasSuffix = x: s: let lx = b.stringLength x; ls = b.stringLength s; in ls >= lx && b.substring (ls - lx) lx s == x;

    # --- evaluation ---
    # Flatten one value into definitions [{ prio; value; }] with no wrapper at the top.
    defsOf = prio: v:
      if isWrapped v then
        (if v._type == "if" then (if v.condition then defsOf prio v.content else [ ])
        else if v._type == "merge" then b.concatMap (defsOf prio) v.contents
        else if v._type == "override" then defsOf v.priority v.content
        else [ { inherit prio; value = v; } ])
      else [ { inherit prio; value = v; } ];

    mergeDefs = path: defs:
      if b.all (d: isTree d.value) defs then
        let
          names = uniq (b.concatMap (d: b.attrNames d.value) defs);
          sub = n: b.concatMap (d: if d.value ? ${n} then defsOf d.prio d.value.${n} else [ ]) defs;
          present = b.filter (n: sub n != [ ]) names;
        in
        b.listToAttrs (map (n: { name = n; value = mergeDefs (path ++ [ n ]) (sub n); }) present)
      else
        let
          best = b.foldl' (m: d: if d.prio < m then d.prio else m) 100000 defs;
          top = b.filter (d: d.prio == best) defs;
          vals = map (d: d.value) top;
        in
        if b.all b.isList vals then b.concatLists vals
        else if b.all (v: v == b.head vals) vals then b.head vals
        else throw "conflicting definitions of ${b.concatStringsSep "." path}";

    resolve = v: mergeDefs [ ] (defsOf 100 v);

    # Option defaults as a definition tree at priority 1500 (only options that have a default).
    defaultsOf = opts:
      if b.isAttrs opts && (opts._type or null) == "option" then
        (if opts ? default then mkOptionDefault opts.default else mkIf false null)
      else b.mapAttrs (_: defaultsOf) opts;

    # Every option value present in cfg passes its type's check; missing options without a
    # default are an error when read (as in NixOS), not here.
    checkOptions = path: opts: cfg:
      b.all (n:
        let o = opts.${n}; p = path ++ [ n ]; in
        if !(cfg ? ${n}) then true
        else if (o._type or null) == "option" && (o.type.name or "") == "attrsOf" && o.type.elemType.name == "submodule" then
          b.all (k: checkOptions (p ++ [ k ]) o.type.elemType.module.options cfg.${n}.${k}) (b.attrNames cfg.${n})
        else if (o._type or null) == "option" then
          (if o ? type && !(o.type.check cfg.${n})
           then throw "option ${b.concatStringsSep "." p}: value does not match type ${o.type.name}"
           else true)
        else checkOptions p o cfg.${n})
        (b.attrNames opts);

    # Union of option trees (declarations never collide across the ringil modules).
    unionTree = a: c: a // b.mapAttrs (n: v: if a ? ${n} && b.isAttrs v && (v._type or null) != "option" then unionTree a.${n} v else v) c;

    # Evaluate modules (functions or attrsets) plus plain settings. NixOS computes a fixpoint; this
    # stub does two rounds instead: modules first read option defaults + settings, then defaults +
    # settings + what every module defined in round one (enough for cross-module reads such as
    # disko.nix reading the networking.hostId that env.nix sets). The result is round two's.
    evalModules = { modules, settings, pkgs }:
      let
        call = config: m:
          let r = if b.isFunction m then m { inherit config pkgs lib; } else m; in
          if r ? options || r ? config then { options = r.options or { }; config = r.config or { }; }
          else { options = { }; config = b.removeAttrs r [ "imports" ]; };
        options = b.foldl' unionTree { } (map (m: m.options) (round config1));
        round = config: map (call config) modules;
        config1 = resolve (mkMerge [ (defaultsOf options) settings ]);
        config2 = resolve (mkMerge ([ (defaultsOf options) settings ] ++ map (m: m.config) (round config1)));
        final = round config2;
        checked = checkOptions [ ] options config2;
      in
      b.seq checked {
        inherit options;
        config = config2;
        result = resolve (mkMerge (map (m: m.config) final));
        # the whole system: the modules' definitions and the settings, merged by priority
        system = resolve (mkMerge ([ settings ] ++ map (m: m.config) final));
      };

    evalModule = { module, settings, pkgs }: evalModules { modules = [ module ]; inherit settings pkgs; };
  };
in
lib
