{
  "targets": [
    {
      "target_name": "instill",
      "sources": ["native/addon.cc", "<!@(node scripts/torch-locate.cjs --sources)"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "native/core",
        "<!@(node scripts/torch-locate.cjs --include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "INSTILL_VERSION=\"0.1.0\""],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "<!@(node scripts/torch-locate.cjs --cflags)"],
      "libraries": ["<!@(node scripts/torch-locate.cjs --libs)", "-ldl"]
    }
  ]
}
