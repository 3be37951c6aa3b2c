// RUN: fusion dce
// exp(x) and tanh(y) start two chains; the add that reads both joins them, so the three
// ops are one kernel, not two kernels feeding a third.
func.func @main(%x: tensor<16xf32>, %y: tensor<16xf32>) -> tensor<16xf32> {
  %e = "gj.exp"(%x) : (tensor<16xf32>) -> tensor<16xf32>
  %t = "gj.tanh"(%y) : (tensor<16xf32>) -> tensor<16xf32>
  %a = "gj.add"(%e, %t) : (tensor<16xf32>, tensor<16xf32>) -> tensor<16xf32>
  func.return %a : tensor<16xf32>
}
// CHECK:      func.func @main
// CHECK-NEXT:   [[F:%[0-9]+]] = "gj.fused"(%arg0, %arg1
// CHECK-NEXT:   ^bb0
// CHECK-NEXT:     "gj.exp"
// CHECK-NEXT:     "gj.tanh"
// CHECK-NEXT:     "gj.add"
// CHECK-NEXT:     "gj.yield"
// CHECK-NEXT:   }
// CHECK-NEXT:   func.return [[F]]
