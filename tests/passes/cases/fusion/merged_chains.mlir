// RUN: fusion dce
// exp(x) and tanh(y) start two chains; the add that reads both joins them, so the three
// ops are one kernel, not two kernels feeding a third.
func @main(%x: tensor<16xf32>, %y: tensor<16xf32>) {
  %e = exp %x : (tensor<16xf32>) -> tensor<16xf32>
  %t = tanh %y : (tensor<16xf32>) -> tensor<16xf32>
  %a = add %e, %t : (tensor<16xf32>, tensor<16xf32>) -> tensor<16xf32>
  return %a : (tensor<16xf32>)
}
// CHECK:      func @main
// CHECK-NEXT:   [[F:%[0-9]+]] = fused %arg0, %arg1
// CHECK-NEXT:   ^bb0
// CHECK-NEXT:     exp
// CHECK-NEXT:     tanh
// CHECK-NEXT:     add
// CHECK-NEXT:     yield
// CHECK-NEXT:   }
// CHECK-NEXT:   return [[F]]
