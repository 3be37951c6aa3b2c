// RUN: fusion dce
// relu(x * 2 + 1): a chain of elementwise ops is one fused op; its scalar constants are
// copied into the region, so the kernel's only input is x.
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %two = "gj.constant"() {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
  %one = "gj.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %zero = "gj.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
  %a = "gj.mul"(%x, %two) : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %b = "gj.add"(%a, %one) : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %c = "gj.maximum"(%b, %zero) : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  func.return %c : tensor<4x8xf32>
}
// CHECK:      func.func @main(%arg0: tensor<4x8xf32>) -> tensor<4x8xf32> {
// CHECK-NEXT:   [[F:%[0-9]+]] = "gj.fused"(%arg0) ({
// CHECK-NEXT:   ^bb0([[X:%arg[0-9]+]]: tensor<4x8xf32>):
// CHECK-NEXT:     [[TWO:%[0-9]+]] = "gj.constant"() {value = dense<2.0> : tensor<f32>}
// CHECK-NEXT:     [[A:%[0-9]+]] = "gj.mul"([[X]], [[TWO]]
// CHECK-NEXT:     [[ONE:%[0-9]+]] = "gj.constant"() {value = dense<1.0> : tensor<f32>}
// CHECK-NEXT:     [[B:%[0-9]+]] = "gj.add"([[A]], [[ONE]]
// CHECK-NEXT:     [[ZERO:%[0-9]+]] = "gj.constant"() {value = dense<0.0> : tensor<f32>}
// CHECK-NEXT:     [[C:%[0-9]+]] = "gj.maximum"([[B]], [[ZERO]]
// CHECK-NEXT:     "gj.yield"([[C]]) : (tensor<4x8xf32>) -> ()
// CHECK-NEXT:   }) : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:   func.return [[F]]
