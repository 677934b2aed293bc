# nixos-core-options.nix: the NixOS core options (nixpkgs nixos/modules) that ringil's modules, lanzaboote,
# disko and jetpack-nixos define or read, declared by hand: nixpkgs itself is not in ../shared/nix-upstream.
#
# Everything else in the test evaluation is real: the nixpkgs lib (module system, types, priorities,
# conflict detection) and the lanzaboote, disko and jetpack-nixos modules, option declarations included.
#
# Rules this file keeps, so that it cannot make a wrong configuration pass:
#  - one declaration per option, with the upstream type it copies (the `upstream:` comment names the
#    nixpkgs file; the type is written as it is there, or restated in lib terms where upstream defines
#    its own type, e.g. the kernel-parameter and sysctl types);
#  - the nixpkgs release it copies is nixos-26.05 (the flake's pin): options removed in 26.05 are declared
#    removed the way upstream does (mkRemovedOptionModule), so a definition of one fails as it would there;
#  - submodules (systemd units, users, file systems, LUKS devices, WireGuard interfaces) declare the
#    sub-options the evaluated modules use, each with its upstream type. Upstream declares more: a
#    definition of another sub-option fails here although it is valid upstream (a false alarm, never
#    a false pass). Freeform upstream submodules (nix.settings, services.openssh.settings, sysctl,
#    systemd unit sections) are freeform here with the upstream freeform type;
#  - defaults are upstream's where a module reads the option; `internal` options keep internal.
# Nothing here implements what the option does (no units are rendered): the tests check definitions,
# merges and types, not builds.
{ lib, pkgs, config, ... }:

let
  inherit (lib) mkOption types;

  # upstream: nixos/modules/system/boot/kernel.nix (boot.kernelParams element type)
  kernelParam = types.strMatching ''([^"[:space:]]|"[^"]*")+'' // {
    name = "kernelParam";
    description = "string, with spaces inside double quotes";
  };

  # upstream: nixos/modules/config/sysctl.nix `sysctlOption`: a bool, string, int or null (or an
  # override of one); definitions are merged by priority and must then agree (mergeOneOption).
  sysctlOption = lib.mkOptionType {
    name = "sysctl option value";
    check =
      val:
      let
        ok = x: builtins.isBool x || builtins.isString x || builtins.isInt x || x == null;
      in
      ok val || ((val._type or "") == "override" && ok val.content);
    merge = loc: defs: lib.mergeOneOption loc (lib.filterOverrides defs);
  };

  # upstream: nixos/lib/systemd-unit-options.nix `unitOption`: an atom or a list; lists concatenate,
  # atoms must be equal.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    check = v: builtins.isBool v || builtins.isInt v || lib.isStringLike v || builtins.isList v;
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if builtins.any (d: builtins.isList d.value) defs' then
        lib.concatMap (d: lib.toList d.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  unitSection = types.attrsOf unitOption;

  # upstream: nixos/lib/systemd-unit-options.nix commonUnitOptions (the dependency lists and unitConfig)
  unitNames = d: mkOption { type = types.listOf types.str; default = [ ]; description = d; };
  commonUnitOptions = {
    enable = mkOption { type = types.bool; default = true; description = "enable"; };
    description = mkOption { type = types.singleLineStr; default = ""; description = "Description="; };
    documentation = unitNames "Documentation=";
    requires = unitNames "Requires=";
    wants = unitNames "Wants=";
    upholds = unitNames "Upholds=";
    after = unitNames "After=";
    before = unitNames "Before=";
    bindsTo = unitNames "BindsTo=";
    partOf = unitNames "PartOf=";
    conflicts = unitNames "Conflicts=";
    requisite = unitNames "Requisite=";
    wantedBy = unitNames "WantedBy (as .wants symlinks)";
    upheldBy = unitNames "UpheldBy";
    requiredBy = unitNames "RequiredBy (as .requires symlinks)";
    onFailure = unitNames "OnFailure=";
    onSuccess = unitNames "OnSuccess=";
    aliases = unitNames "Alias=";
    unitConfig = mkOption { type = unitSection; default = { }; description = "[Unit]"; };
    overrideStrategy = mkOption {
      type = types.enum [ "asDropinIfExists" "asDropin" ];
      default = "asDropinIfExists";
      description = "how an upstream unit of the same name is overridden";
    };
  };
  # upstream: serviceOptions + stage2ServiceOptions
  serviceOptions = commonUnitOptions // {
    serviceConfig = mkOption { type = unitSection; default = { }; description = "[Service]"; };
    environment = mkOption {
      type = with types; attrsOf (nullOr (oneOf [ str path package ]));
      default = { };
      description = "Environment=";
    };
    path = mkOption {
      type = with types; listOf (oneOf [ package str ]);
      default = [ ];
      description = "packages on PATH";
    };
    script = mkOption { type = types.lines; default = ""; description = "ExecStart script"; };
    scriptArgs = mkOption { type = types.str; default = ""; description = "script arguments"; };
    preStart = mkOption { type = types.lines; default = ""; description = "ExecStartPre script"; };
    postStart = mkOption { type = types.lines; default = ""; description = "ExecStartPost script"; };
    preStop = mkOption { type = types.lines; default = ""; description = "ExecStop script"; };
    postStop = mkOption { type = types.lines; default = ""; description = "ExecStopPost script"; };
    reload = mkOption { type = types.lines; default = ""; description = "ExecReload script"; };
    restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; description = "restart when these change"; };
    reloadTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; description = "reload when these change"; };
    restartIfChanged = mkOption { type = types.bool; default = true; description = "restart on switch"; };
    reloadIfChanged = mkOption { type = types.bool; default = false; description = "reload on switch"; };
    stopIfChanged = mkOption { type = types.bool; default = true; description = "stop then start on switch"; };
    startAt = mkOption {
      type = with types; either str (listOf str);
      default = [ ];
      description = "OnCalendar timer";
    };
  };
  mountOptions = commonUnitOptions // {
    what = mkOption { type = types.str; description = "What="; };
    where = mkOption { type = types.str; description = "Where="; };
    type = mkOption { type = types.str; default = ""; description = "Type="; };
    options = mkOption { type = types.commas; default = ""; description = "Options="; };
    mountConfig = mkOption { type = unitSection; default = { }; description = "[Mount]"; };
  };
  timerOptions = commonUnitOptions // {
    timerConfig = mkOption { type = unitSection; default = { }; description = "[Timer]"; };
  };
  units = opts: types.attrsOf (types.submodule { options = opts; });

  # upstream: nixos/modules/tasks/filesystems.nix `fsOptionType` (boot.supportedFilesystems and the initrd's)
  fsSupport = types.coercedTo (types.listOf types.str) (
    enabled: lib.listToAttrs (map (fs: lib.nameValuePair fs true) enabled)
  ) (types.attrsOf types.bool);

  # upstream: nixos/modules/config/nix.nix `confAtom` (nix.settings values)
  nixConfAtom =
    with types;
    nullOr (oneOf [ bool int float str path package ])
    // {
      description = "Nix config atom (null, bool, int, float, str, path or package)";
    };
in
{
  imports = [
    # Removed in nixos-26.05 in favour of RFC 42 `settings` (nixpkgs PRs 493223 and 497098): a definition
    # of either fails evaluation there, as here.
    (lib.mkRemovedOptionModule [ "systemd" "sleep" "extraConfig" ] "Use systemd.sleep.settings.Sleep instead.")
    (lib.mkRemovedOptionModule [ "systemd" "coredump" "extraConfig" ] "Use systemd.coredump.settings.Coredump instead.")
  ];

  # upstream: nixos/modules/tasks/network-interfaces.nix checks the host id this way
  config.assertions = [
    {
      assertion = config.networking.hostId == null
        || builtins.match "[0-9a-fA-F]{8}" config.networking.hostId != null;
      message = "Invalid value given to the networking.hostId option.";
    }
  ];

  options = {
    # upstream: nixos/modules/misc/assertions.nix
    assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; description = "assertions"; };
    warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; description = "warnings"; };

    boot = {
      # upstream: nixos/modules/system/boot/kernel.nix
      kernelPackages = mkOption { type = types.raw; default = pkgs.linuxPackages; description = "kernel package set"; };
      kernelParams = mkOption { type = types.listOf kernelParam; default = [ ]; description = "kernel command line"; };
      consoleLogLevel = mkOption { type = types.int; default = 4; description = "console log level"; };
      kernelModules = mkOption { type = types.listOf types.str; default = [ ]; description = "modules loaded in stage 2"; };
      blacklistedKernelModules = mkOption { type = types.listOf types.str; default = [ ]; description = "modules never loaded"; };
      extraModulePackages = mkOption { type = types.listOf types.package; default = [ ]; description = "out-of-tree modules"; };
      extraModprobeConfig = mkOption { type = types.lines; default = ""; description = "modprobe.conf"; };
      kernelPatches = mkOption { type = types.listOf types.attrs; default = [ ]; description = "kernel patches"; };
      # upstream: nixos/modules/config/sysctl.nix
      kernel.sysctl = mkOption {
        type = types.submodule { freeformType = types.attrsOf sysctlOption; };
        default = { };
        description = "sysctl";
      };
      # upstream: nixos/modules/tasks/filesystems.nix
      supportedFilesystems = mkOption { type = fsSupport; default = { }; description = "file systems"; };
      # upstream: nixos/modules/system/boot/tmp.nix
      tmp.useTmpfs = mkOption { type = types.bool; default = false; description = "/tmp on tmpfs"; };
      # upstream: nixos/modules/tasks/filesystems/zfs.nix
      zfs.forceImportRoot = mkOption { type = types.bool; default = true; description = "zpool import -f"; };
      # upstream: nixos/modules/system/activation/bootspec.nix
      bootspec.extensions = mkOption { type = types.attrsOf types.anything; default = { }; description = "bootspec extensions"; };

      initrd = {
        # upstream: nixos/modules/system/boot/kernel.nix
        kernelModules = mkOption { type = types.listOf types.str; default = [ ]; description = "initrd modules loaded"; };
        availableKernelModules = mkOption { type = types.listOf types.str; default = [ ]; description = "initrd modules available"; };
        includeDefaultModules = mkOption { type = types.bool; default = true; description = "default initrd modules"; };
        # upstream: nixos/modules/tasks/filesystems.nix
        supportedFilesystems = mkOption { type = fsSupport; default = { }; description = "initrd file systems"; };
        luks = {
          # upstream: nixos/modules/system/boot/luksroot.nix
          cryptoModules = mkOption { type = types.listOf types.str; default = [ ]; description = "crypto modules"; };
          devices = mkOption {
            default = { };
            description = "LUKS devices";
            type = types.attrsOf (types.submodule ({ name, ... }: {
              options = {
                name = mkOption { type = types.str; default = name; internal = true; description = "name"; };
                device = mkOption { type = types.str; description = "encrypted device"; };
                allowDiscards = mkOption { type = types.bool; default = false; description = "discards"; };
                bypassWorkqueues = mkOption { type = types.bool; default = false; description = "no workqueues"; };
                keyFile = mkOption { type = types.nullOr types.str; default = null; description = "key file"; };
                crypttabExtraOpts = mkOption {
                  type = types.listOf types.singleLineStr;
                  default = [ ];
                  description = "crypttab options (systemd stage 1)";
                };
              };
            }));
          };
        };
        # upstream: nixos/modules/system/boot/systemd/initrd.nix and .../systemd/tpm2.nix
        systemd = {
          enable = mkOption { type = types.bool; default = false; description = "systemd in stage 1"; };
          package = mkOption { type = types.package; default = pkgs.systemd; description = "systemd"; };
          emergencyAccess = mkOption {
            type = with types; oneOf [ bool (nullOr (passwdEntry str)) ];
            default = false;
            description = "emergency shell in stage 1";
          };
          # upstream default: `package.withTpm2Tss && package.withBootloader`, both true for nixpkgs' systemd
          tpm2.enable = mkOption { type = types.bool; default = true; description = "TPM2 in stage 1"; };
          storePaths = mkOption {
            type = with types; listOf (coercedTo (either singleLineStr package) toString singleLineStr);
            default = [ ];
            description = "store paths copied into the initrd";
          };
          additionalUpstreamUnits = mkOption { type = types.listOf types.str; default = [ ]; description = "upstream units"; };
          services = mkOption { type = units serviceOptions; default = { }; description = "initrd services"; };
          targets = mkOption { type = units commonUnitOptions; default = { }; description = "initrd targets"; };
          mounts = mkOption { type = types.listOf (types.submodule { options = mountOptions; }); default = [ ]; description = "initrd mounts"; };
        };
      };

      loader = {
        # upstream: nixos/modules/system/boot/loader/loader.nix
        timeout = mkOption { type = types.nullOr types.int; default = 5; description = "menu timeout"; };
        # upstream: nixos/modules/system/boot/loader/efi.nix
        efi = {
          canTouchEfiVariables = mkOption { type = types.bool; default = false; description = "write EFI variables"; };
          efiSysMountPoint = mkOption { type = types.str; default = "/boot"; description = "ESP mount point"; };
        };
        # upstream: nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix
        systemd-boot = {
          enable = mkOption { type = types.bool; default = false; description = "systemd-boot"; };
          editor = mkOption { type = types.bool; default = true; description = "kernel command line editor"; };
          configurationLimit = mkOption { type = types.nullOr types.int; default = null; description = "generations kept"; };
          consoleMode = mkOption {
            type = types.enum [ "0" "1" "2" "5" "auto" "max" "keep" ];
            default = "keep";
            description = "console mode";
          };
          extraInstallCommands = mkOption { type = types.lines; default = ""; description = "after install"; };
        };
        # upstream: nixos/modules/system/boot/loader/grub/grub.nix
        grub = {
          enable = mkOption { type = types.bool; default = !config.boot.loader.systemd-boot.enable && !config.boot.loader.external.enable; description = "GRUB"; };
          efiSupport = mkOption { type = types.bool; default = false; description = "GRUB EFI"; };
          devices = mkOption { type = types.listOf types.str; default = [ ]; description = "GRUB devices"; };
          extraInstallCommands = mkOption { type = types.lines; default = ""; description = "after install"; };
        };
        # upstream: nixos/modules/system/boot/loader/external/external.nix
        external = {
          enable = mkOption { type = types.bool; default = false; description = "external boot loader installer"; };
          installHook = mkOption { type = types.path; description = "installer"; };
        };
        # upstream: nixos/modules/system/boot/loader/loader.nix (internal)
        supportsInitrdSecrets = mkOption { type = types.bool; internal = true; default = false; description = "initrd secrets"; };
      };
    };

    # upstream: nixos/modules/config/console.nix
    console.enable = mkOption { type = types.bool; default = true; description = "virtual console"; };

    # upstream: nixos/modules/misc/documentation.nix
    documentation = {
      enable = mkOption { type = types.bool; default = true; description = "documentation"; };
      nixos.enable = mkOption { type = types.bool; default = true; description = "NixOS manual"; };
    };

    environment = {
      # upstream: nixos/modules/system/etc/etc.nix
      etc = mkOption {
        default = { };
        description = "files in /etc";
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options = {
            enable = mkOption { type = types.bool; default = true; description = "enable"; };
            target = mkOption { type = types.str; default = name; description = "path below /etc"; };
            text = mkOption { type = types.nullOr types.lines; default = null; description = "contents"; };
            source = mkOption { type = types.path; description = "source file"; };
            mode = mkOption { type = types.str; default = "symlink"; description = "mode"; };
            user = mkOption { type = types.str; default = "+0"; description = "owner"; };
            group = mkOption { type = types.str; default = "+0"; description = "group"; };
          };
        }));
      };
      # upstream: nixos/modules/config/system-path.nix
      systemPackages = mkOption { type = types.listOf types.package; default = [ ]; description = "packages"; };
      defaultPackages = mkOption { type = types.listOf types.package; default = [ ]; description = "default packages"; };
    };

    # upstream: nixos/modules/tasks/filesystems.nix (fileSystems.<name>)
    fileSystems = mkOption {
      default = { };
      description = "file systems";
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          mountPoint = mkOption { type = types.str; default = name; description = "mount point"; };
          device = mkOption { type = types.nullOr types.nonEmptyStr; default = null; description = "device"; };
          fsType = mkOption { type = types.nonEmptyStr; default = "auto"; description = "type"; };
          options = mkOption { type = types.nonEmptyListOf types.nonEmptyStr; default = [ "defaults" ]; description = "mount options"; };
          autoFormat = mkOption { type = types.bool; default = false; description = "format if empty"; };
          formatOptions = mkOption { type = types.nullOr types.str; default = null; description = "mkfs options"; };
          neededForBoot = mkOption { type = types.bool; default = false; description = "mounted in stage 1"; };
        };
      }));
    };

    hardware = {
      # upstream: nixos/modules/hardware/all-firmware.nix
      firmware = mkOption { type = types.listOf types.package; default = [ ]; description = "firmware"; };
      # upstream: nixos/modules/hardware/device-tree.nix
      deviceTree = {
        enable = mkOption { type = types.bool; default = false; description = "device tree"; };
        kernelPackage = mkOption { type = types.path; default = config.boot.kernelPackages.kernel; description = "dtb source package"; };
        dtbSource = mkOption { type = types.path; default = "${config.hardware.deviceTree.kernelPackage}/dtbs"; description = "dtbs"; };
        dtboBuildExtraIncludePaths = mkOption { type = types.listOf types.path; default = [ ]; description = "dtc include paths"; };
      };
      # upstream: nixos/modules/hardware/graphics.nix
      graphics = {
        enable = mkOption { type = types.bool; default = false; description = "graphics"; };
        package = mkOption { type = types.package; internal = true; description = "driver"; };
        extraPackages = mkOption { type = types.listOf types.package; default = [ ]; description = "extra drivers"; };
      };
      # upstream: nixos/modules/hardware/video/nvidia.nix (jetpack-nixos re-declares `enabled` with readOnly = false)
      nvidia = {
        enabled = mkOption { type = types.bool; readOnly = true; default = false; description = "NVIDIA driver in use"; };
        package = mkOption { type = types.package; description = "driver"; };
      };
      # upstream: nixos/modules/services/hardware/bluetooth.nix
      bluetooth.enable = mkOption { type = types.bool; default = false; description = "bluetooth"; };
      # upstream: nixos/modules/services/hardware/nvidia-container-toolkit/default.nix
      nvidia-container-toolkit = {
        enable = mkOption { type = types.bool; default = false; description = "CDI generator"; };
        csv-files = mkOption { type = types.listOf types.path; default = [ ]; description = "CSV files"; };
        discovery-mode = mkOption { type = types.enum [ "auto" "csv" "nvml" "wsl" ]; default = "auto"; description = "discovery"; };
        mount-nvidia-docker-1-directories = mkOption { type = types.bool; default = true; description = "legacy mounts"; };
        mount-nvidia-executables = mkOption { type = types.bool; default = true; description = "executables"; };
        extraArgs = mkOption { type = types.listOf types.str; default = [ ]; description = "extra arguments"; };
        mounts = mkOption {
          default = [ ];
          description = "bind mounts into containers";
          type = types.listOf (types.submodule {
            options = {
              hostPath = mkOption { type = types.str; description = "host path"; };
              containerPath = mkOption { type = types.str; description = "container path"; };
              mountOptions = mkOption { type = types.listOf types.str; default = [ "ro" "nosuid" "nodev" "bind" ]; description = "options"; };
            };
          });
        };
      };
    };

    networking = {
      # upstream: nixos/modules/tasks/network-interfaces.nix
      hostName = mkOption {
        type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
        default = config.system.nixos.distroId;
        description = "host name";
      };
      hostId = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "32-bit host id (8 hex digits)";
      };
      # upstream: nixos/modules/services/networking/wpa_supplicant.nix, iwd.nix
      wireless.enable = mkOption { type = types.bool; default = false; description = "wpa_supplicant"; };
      wireless.iwd.enable = mkOption { type = types.bool; default = false; description = "iwd"; };
      # upstream: nixos/modules/services/networking/wireguard.nix, wireguard-networkd.nix
      wireguard = {
        enable = mkOption { type = types.bool; default = config.networking.wireguard.interfaces != { }; description = "WireGuard"; };
        useNetworkd = mkOption { type = types.bool; default = false; description = "networkd backend"; };
        interfaces = mkOption {
          default = { };
          description = "WireGuard interfaces";
          type = types.attrsOf (types.submodule {
            options = {
              ips = mkOption { type = types.listOf types.str; default = [ ]; description = "addresses"; };
              privateKey = mkOption { type = types.nullOr types.str; default = null; description = "key (ends up in the store)"; };
              generatePrivateKeyFile = mkOption { type = types.bool; default = false; description = "wg genkey at first start"; };
              privateKeyFile = mkOption { type = types.nullOr types.path; default = null; description = "key file"; };
              listenPort = mkOption { type = types.nullOr types.int; default = null; description = "UDP port"; };
              table = mkOption { type = types.str; default = "main"; description = "route table"; };
              allowedIPsAsRoutes = mkOption { type = types.bool; default = true; description = "routes"; };
              mtu = mkOption { type = types.nullOr types.int; default = null; description = "MTU"; };
              peers = mkOption {
                default = [ ];
                description = "peers";
                type = types.listOf (types.submodule {
                  options = {
                    publicKey = mkOption { type = types.nullOr types.str; default = null; description = "public key"; };
                    presharedKeyFile = mkOption { type = types.nullOr types.str; default = null; description = "PSK file"; };
                    allowedIPs = mkOption { type = types.listOf types.str; description = "allowed IPs"; };
                    endpoint = mkOption { type = types.nullOr types.str; default = null; description = "host:port"; };
                    dynamicEndpointRefreshSeconds = mkOption { type = types.int; default = 0; description = "re-resolve period"; };
                    persistentKeepalive = mkOption { type = types.nullOr types.int; default = null; description = "keepalive"; };
                  };
                });
              };
            };
          });
        };
      };
    };

    # upstream: nixos/modules/config/nix.nix
    nix.settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf (types.either nixConfAtom (types.listOf nixConfAtom));
        options = {
          substituters = mkOption { type = types.listOf types.str; default = [ ]; description = "substituters"; };
          trusted-public-keys = mkOption { type = types.listOf types.str; default = [ ]; description = "trusted keys"; };
          require-sigs = mkOption { type = types.bool; default = true; description = "require signatures"; };
        };
      };
      default = { };
      description = "nix.conf";
    };

    # upstream: nixos/modules/misc/nixpkgs.nix
    nixpkgs = {
      pkgs = mkOption { type = types.pkgs; description = "package set"; };
      hostPlatform = mkOption { type = types.either types.str types.attrs; description = "host platform"; };
      overlays = mkOption {
        type = types.listOf (lib.mkOptionType { name = "nixpkgs-overlay"; check = builtins.isFunction; merge = lib.mergeOneOption; });
        default = [ ];
        description = "overlays";
      };
      config = mkOption { type = types.attrsOf types.anything; default = { }; description = "nixpkgs config"; };
    };

    security = {
      # upstream: nixos/modules/security/tpm2.nix
      tpm2.enable = mkOption { type = types.bool; default = false; description = "TPM2 userspace"; };
      # upstream: nixos/modules/security/misc.nix
      protectKernelImage = mkOption { type = types.bool; default = false; description = "no kexec, no hibernation"; };
      # upstream: nixos/modules/security/apparmor.nix, nixos/modules/security/lsm.nix
      apparmor.enable = mkOption { type = types.bool; default = false; description = "AppArmor"; };
      lsm = mkOption { type = types.listOf types.str; default = [ ]; description = "lsm="; };
      # upstream: nixos/modules/security/pam.nix `limitsType`
      pam.loginLimits = mkOption {
        default = [ ];
        description = "limits.conf";
        type = types.listOf (types.submodule {
          options = {
            domain = mkOption { type = types.str; description = "who"; };
            type = mkOption { type = types.enum [ "-" "hard" "soft" ]; default = "-"; description = "limit type"; };
            item = mkOption {
              type = types.enum [ "core" "data" "fsize" "memlock" "nofile" "rss" "stack" "cpu" "nproc" "as"
                                  "maxlogins" "maxsyslogins" "priority" "locks" "sigpending" "msgqueue" "nice" "rtprio" ];
              description = "what";
            };
            value = mkOption { type = types.str; description = "value"; };
          };
        });
      };
    };

    services = {
      # upstream: nixos/modules/services/networking/ssh/sshd.nix
      openssh = {
        enable = mkOption { type = types.bool; default = false; description = "sshd"; };
        settings = mkOption {
          default = { };
          description = "sshd_config";
          type = types.submodule {
            freeformType = with types; attrsOf (nullOr (oneOf [ bool int str (listOf str) ]));
            options = {
              PasswordAuthentication = mkOption { type = types.nullOr types.bool; default = true; description = "passwords"; };
              KbdInteractiveAuthentication = mkOption { type = types.nullOr types.bool; default = true; description = "keyboard-interactive"; };
              PermitRootLogin = mkOption {
                type = types.nullOr (types.enum [ "yes" "without-password" "prohibit-password" "forced-commands-only" "no" ]);
                default = "prohibit-password";
                description = "root login";
              };
            };
          };
        };
      };
      # upstream: nixos/modules/system/boot/systemd/journald.nix (extraConfig still exists in 26.05; 26.11
      # replaces it with settings.Journal)
      journald.extraConfig = mkOption { type = types.lines; default = ""; description = "journald.conf"; };
      # upstream: nixos/modules/services/hardware/udisks2.nix
      udisks2.enable = mkOption { type = types.bool; default = false; description = "udisks2"; };
      # upstream: nixos/modules/services/hardware/udev.nix
      udev.packages = mkOption { type = types.listOf types.path; default = [ ]; description = "udev rules"; };
      # upstream: nixos/modules/services/hardware/fwupd.nix
      fwupd.enable = mkOption { type = types.bool; default = false; description = "fwupd"; };
      # (a section of fwupd's uefi_capsule.conf: pkgs.formats.ini atoms)
      fwupd.uefiCapsuleSettings = mkOption {
        type = types.submodule { freeformType = with types; attrsOf (nullOr (oneOf [ bool int float str ])); };
        default = { };
        description = "uefi_capsule.conf";
      };
      # upstream: nixos/modules/services/x11/xserver.nix and display-managers/lightdm.nix
      xserver = {
        enable = mkOption { type = types.bool; default = false; description = "X11"; };
        videoDrivers = mkOption { type = types.listOf types.str; default = [ ]; description = "drivers"; };
        drivers = mkOption { type = types.listOf types.attrs; internal = true; default = [ ]; description = "driver attrs"; };
        displayManager.lightdm.extraConfig = mkOption { type = types.lines; default = ""; description = "lightdm.conf"; };
      };
    };

    # upstream: nixos/modules/config/swap.nix
    swapDevices = mkOption {
      default = [ ];
      description = "swap";
      type = types.listOf (types.submodule {
        options = {
          device = mkOption { type = types.nonEmptyStr; description = "device or file"; };
          size = mkOption { type = types.nullOr types.int; default = null; description = "MiB"; };
        };
      });
    };

    system = {
      # upstream: nixos/modules/misc/version.nix
      stateVersion = mkOption { type = types.str; default = "26.05"; description = "state version"; };
      nixos.release = mkOption { type = types.str; readOnly = true; default = "26.05"; description = "release"; };
      nixos.distroId = mkOption { type = types.str; readOnly = true; default = "nixos"; internal = true; description = "distro id"; };
      # upstream: nixos/modules/system/activation/top-level.nix
      build = mkOption {
        type = types.submoduleWith { modules = [ { freeformType = with types; lazyAttrsOf (uniq unspecified); } ]; };
        default = { };
        description = "build products";
      };
      # upstream: nixos/modules/system/activation/switchable-system.nix, pre-switch-check.nix
      switch.enable = mkOption { type = types.bool; default = true; description = "switch-to-configuration"; };
      preSwitchChecks = mkOption { type = types.attrsOf types.str; default = { }; description = "checks before switching"; };
    };

    systemd = {
      # upstream: nixos/modules/system/boot/systemd.nix
      package = mkOption { type = types.package; default = pkgs.systemd; description = "systemd"; };
      services = mkOption { type = units serviceOptions; default = { }; description = "services"; };
      targets = mkOption { type = units commonUnitOptions; default = { }; description = "targets"; };
      timers = mkOption { type = units timerOptions; default = { }; description = "timers"; };
      additionalUpstreamSystemUnits = mkOption { type = types.listOf types.str; default = [ ]; description = "upstream units"; };
      enableEmergencyMode = mkOption { type = types.bool; default = true; description = "emergency shell"; };
      # upstream (26.05, nixpkgs PR 493223): systemd.sleep.settings.Sleep
      sleep.settings.Sleep = mkOption { type = unitSection; default = { }; description = "sleep.conf [Sleep]"; };
      # upstream: nixos/modules/system/boot/systemd/coredump.nix (26.05, nixpkgs PR 497098)
      coredump = {
        enable = mkOption { type = types.bool; default = true; description = "systemd-coredump"; };
        settings.Coredump = mkOption { type = unitSection; default = { }; description = "coredump.conf [Coredump]"; };
      };
    };

    # upstream: nixos/modules/config/users-groups.nix
    users = {
      allowNoPasswordLogin = mkOption { type = types.bool; default = false; description = "no login possible"; };
      mutableUsers = mkOption { type = types.bool; default = true; description = "useradd at run time"; };
      users = mkOption {
        default = { };
        description = "users";
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options = {
            name = mkOption { type = types.passwdEntry types.str; default = name; description = "name"; };
            hashedPassword = mkOption { type = with types; nullOr (passwdEntry str); default = null; description = "crypt hash"; };
            shell = mkOption {
              type = types.nullOr (types.either types.shellPackage (types.passwdEntry types.path));
              default = null;
              description = "login shell";
            };
            openssh.authorizedKeys.keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; description = "SSH keys"; };
          };
        }));
      };
    };

    # upstream: nixos/modules/virtualisation/docker.nix, podman/default.nix (read by jetpack-nixos)
    virtualisation = {
      docker = {
        enable = mkOption { type = types.bool; default = false; description = "docker"; };
        enableNvidia = mkOption { type = types.bool; default = false; description = "nvidia runtime"; };
      };
      podman = {
        enable = mkOption { type = types.bool; default = false; description = "podman"; };
        enableNvidia = mkOption { type = types.bool; default = false; description = "nvidia runtime"; };
      };
    };
  };
}
