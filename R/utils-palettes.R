# ArchR's colour palettes (ArchR R/ColorPalettes.R), shared by every plot.

# "stallion", discrete, in the order ArchR's paletteDiscrete() uses: it
# mixed-sorts the palette's names "1".."20", so colour 9 is #D8A767.
.stallion <- c("#D51F26", "#272E6A", "#208A42", "#89288F", "#F47D2B",
               "#FEE500", "#8A9FD1", "#C06CAB", "#D8A767", "#90D5E4",
               "#89C75F", "#F37B7D", "#9983BD", "#D24B27", "#3BBCA8",
               "#6E4B9E", "#0C727C", "#7E1416", "#E6C2DC", "#3D3D3D")

# "solarExtra", continuous (paletteContinuous); ArchR's default for ATAC
# signal and chromVAR z-scores.
.solar_extra <- c("#3361A5", "#248AF3", "#14B3FF", "#88CEEF", "#C1D5DC",
                  "#EAD397", "#FDB31A", "#E42A2A", "#A31D1D")
