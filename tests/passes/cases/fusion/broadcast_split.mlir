// RUN: fusion dce
// exp(b) has b's shape [8]; adding it to x broadcasts it to [4, 8]. The two loop nests
// differ, so they are two kernels (fusing them would compute exp 4 times per element).
func.func @main(%x: tensor<4x8xf64>, %b: tensor<8xf64>) -> tensor<4x8xf64> {
  %e = "gj.exp"(%b) : (tensor<8xf64>) -> tensor<8xf64>
  %y = "gj.add"(%x, %e) : (tensor<4x8xf64>, tensor<8xf64>) -> tensor<4x8xf64>
  %t = "gj.tanh"(%y) : (tensor<4x8xf64>) -> tensor<4x8xf64>
  func.return %t : tensor<4x8xf64>
}
// CHECK:      [[E:%[0-9]+]] = "gj.fused"(%arg1) ({
// CHECK:        "gj.exp"
// CHECK-NOT:    "gj.add"
// CHECK:      [[T:%[0-9]+]] = "gj.fused"(%arg0, [[E]]) ({
// CHECK:        "gj.add"
// CHECK-NEXT:   "gj.tanh"
// CHECK:      func.return [[T]]
